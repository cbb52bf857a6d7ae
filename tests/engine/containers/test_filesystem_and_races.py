"""export/commit through the manager, and a stop racing supervise passes."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest

from tests.engine.containers.helpers import output, run, supervise_passes, wait_for_line
from workers.engine.containers import ContainerManager, InvalidConfig

pytestmark = pytest.mark.root


def test_commit_and_export(manager: ContainerManager):
    c = run(manager, "echo committed > /hello; rm /etc/hostname", name="src")
    image_id = manager.commit("src", "snap:1", author="tester", message="a change", changes=['ENV MARK=yes'])
    assert image_id.startswith("sha256:")
    c2 = run(manager, 'cat /hello; echo "$MARK"; test -e /etc/hostname || echo no-hostname', image="snap:1")
    assert output(manager, c2["id"]).split() == ["committed", "yes", "no-hostname"]
    assert manager.inspect(c2["id"])["image_id"] == image_id
    buf = io.BytesIO()
    size = manager.export(c["id"], buf)
    assert size == len(buf.getvalue()) > 0
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert "hello" in names and "bin/busybox" in names and "etc/hostname" not in names
    with pytest.raises(InvalidConfig) as e:
        manager.commit("src", "Bad Ref!")
    assert e.value.field == "ref"


def test_stop_and_supervise_do_not_race(manager: ContainerManager, state_root: Path, instant_restarts):
    c = manager.create("busybox", command=["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
                       restart_policy="always")
    manager.start(c["id"])
    wait_for_line(manager, c["id"], "ready")
    result = {}
    t = threading.Thread(target=lambda: result.update(manager.stop(c["id"], timeout=0.5)))
    t.start()
    while t.is_alive():
        manager.supervise()  # skips the container while the stop holds its lock
    t.join()
    supervise_passes(manager)  # without backoff, a restart by the policy would have happened by now
    info = manager.inspect(c["id"])
    assert result["state"] == info["state"] == "exited" and info["exit_code"] == 137
    assert info["restart_count"] == 0  # stopped by the user: the policy does not bring it back
    manager.remove(c["id"])
    assert sorted(p.name for p in (state_root / "containers").iterdir()) == []
