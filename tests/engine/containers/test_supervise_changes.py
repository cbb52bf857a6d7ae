"""supervise() costs per change: a pass over idle containers looks at none of them, and a change (an
exit the monitor records, a record another manager saves) is still reported at the next pass."""

from __future__ import annotations

import pytest

from tests.engine.containers.helpers import supervise_until
from workers.engine.containers import ContainerManager

pytestmark = pytest.mark.root


def test_idle_passes_look_at_no_container_and_changes_are_reported(manager: ContainerManager, state_root,
                                                                     monkeypatch):
    idle = [manager.create("busybox", command=["sleep", "1000"]) for _ in range(3)]
    short = manager.create("busybox", command=["sleep", "1000"])
    for c in [*idle, short]:
        manager.start(c["id"])
    manager.supervise()  # the first pass looks at everything
    looked: list[str] = []
    real = type(manager)._supervise_one
    monkeypatch.setattr(type(manager), "_supervise_one", lambda self, cid: looked.append(cid) or real(self, cid))
    for _ in range(5):
        assert manager.supervise() == []
    assert looked == []  # nothing changed: no record read, no runtime asked
    # an exit, recorded by the monitor: seen at the next passes, and only that container looked at
    manager.kill(short["id"], "KILL")
    seen = supervise_until(manager, lambda: manager.inspect(short["id"])["state"] == "exited", "the exit")
    assert [s["id"] for s in seen] == [short["id"]] and seen[0]["exit_code"] == 137
    assert set(looked) == {short["id"]}
    # a change made by another manager instance (another process, as the API's jobs are)
    looked.clear()
    ContainerManager(state_root).stop(idle[0]["id"], timeout=1)
    seen = manager.supervise()
    assert [(s["id"], s["state"]) for s in seen] == [(idle[0]["id"], "exited")]
    assert set(looked) == {idle[0]["id"]}
