"""The runtime's verbs in a fork of the monitor (monitor/forking.py): the child runs its verb only once
its monitor wrote it down, keeps none of the monitor's file descriptors, and answers as the runtime's
command line would. Plain processes: no container, no root."""

from __future__ import annotations

import os
from pathlib import Path

from workers.engine.monitor import forking
from workers.engine.runtime.errors import InvalidState


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _stdio(tmp_path: Path) -> tuple[tuple[int, int, int], Path]:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    err = tmp_path / "stderr"
    errfd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return (null, null, errfd), err


def _close(stdio: tuple[int, int, int]) -> None:
    for fd in {*stdio}:
        os.close(fd)


def test_the_verb_runs_once_released_with_nothing_of_the_monitor(tmp_path):
    # as the monitor holds its flock'd pid file: a container's init keeping it would lock the next monitor out
    lock = os.open(tmp_path / "monitor.pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    out = tmp_path / "seen"

    def verb() -> None:
        fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        comm = Path("/proc/self/comm").read_text().strip()
        out.write_text(f"{fds} {comm}")

    stdio, err = _stdio(tmp_path)
    try:
        pid, gate = forking.fork_verb(verb, stdio, "berth-create")
        try:
            assert not out.exists()  # held at the gate until released
        finally:
            forking.release(gate)
        assert _wait(pid) == 0
    finally:
        os.close(lock)
        _close(stdio)
    fds, comm = out.read_text().rsplit(" ", 1)
    assert fds == "[0, 1, 2, 3]"  # its stdio, and the directory listdir had open
    assert comm == "berth-create"
    assert err.read_text() == ""


def test_a_monitor_that_dies_unreleased_leaves_a_child_that_does_nothing(tmp_path):
    out = tmp_path / "ran"
    stdio, _ = _stdio(tmp_path)
    pid, gate = forking.fork_verb(lambda: out.write_text("ran"), stdio, "berth-start", lambda me: False)
    _close(stdio)
    os.close(gate)  # as the kernel does when the monitor is killed
    assert _wait(pid) == forking.NOT_RELEASED
    assert not out.exists()


def test_a_monitor_that_dies_after_writing_the_child_down_leaves_a_child_that_runs(tmp_path):
    out = tmp_path / "ran"
    record = tmp_path / "record"
    stdio, _ = _stdio(tmp_path)
    pid, gate = forking.fork_verb(lambda: out.write_text("ran"), stdio, "berth-start",
                                  lambda me: record.read_text() == str(me))
    _close(stdio)
    record.write_text(str(pid))
    os.close(gate)
    assert _wait(pid) == 0
    assert out.read_text() == "ran"


def test_a_failing_verb_says_why_as_the_command_line_does(tmp_path):
    def verb() -> None:
        raise InvalidState("cannot start a container that has stopped")

    stdio, err = _stdio(tmp_path)
    pid, gate = forking.fork_verb(verb, stdio, "berth-start")
    _close(stdio)
    forking.release(gate)
    assert _wait(pid) == 1
    line = err.read_text()
    assert 'level=error msg="cannot start a container that has stopped"' in line
    assert line.count("\n") == 1


def test_a_write_to_a_closed_pipe_is_an_error_not_the_death_of_the_verb(tmp_path):
    """As in the command line's interpreter: an OCI hook that exits without reading the state it is given
    must not kill the create (it did, with SIGPIPE, in tests/engine/monitor/test_takeover.py)."""
    def verb() -> None:
        r, w = os.pipe()
        os.close(r)
        os.write(w, b"state")

    stdio, err = _stdio(tmp_path)
    pid, gate = forking.fork_verb(verb, stdio, "berth-create")
    _close(stdio)
    forking.release(gate)
    assert _wait(pid) == 1  # not -SIGPIPE
    assert "Broken pipe" in err.read_text()
