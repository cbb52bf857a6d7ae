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


def test_supervise_starts_the_next_monitor_which_records_the_exit_meanwhile(manager: ContainerManager):
    import os
    import signal
    import time

    c = manager.create("busybox", command=["sleep", "1000"])
    manager.start(c["id"])
    manager.supervise()
    old = manager.monitor.pid()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{old}"):  # reaped by the holder
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(manager.inspect(c["id"])["pid"], signal.SIGKILL)  # the container ends while no monitor runs
    seen = supervise_until(manager, lambda: manager.inspect(c["id"])["state"] == "exited", "the exit")
    assert manager.monitor.pid() not in (None, old)  # the worker's pass started the next monitor
    assert seen[-1]["exit_code"] == 137  # the real status, reaped by the holder, not "dead"/unknown
