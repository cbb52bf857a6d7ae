"""exec sessions owned by the host's monitor, against real busybox containers."""

from __future__ import annotations

import os
import signal

import pytest

from workers.engine.containers import ContainerError, ContainerManager, InvalidConfig, InvalidState
from workers.engine.monitor.client import MonitorClient

pytestmark = pytest.mark.root


def _running(m: ContainerManager, **kw) -> dict:
    c = m.create("busybox", command=["sleep", "1000"], **kw)
    m.start(c["id"])
    return c


def _output(m: ContainerManager, cid: str, sid: str) -> tuple[dict, dict[str, bytes]]:
    """Attach, collect every stream until the exit frame; (exit info, stream -> bytes)."""
    out: dict[str, bytes] = {}
    for frame in m.exec_attach(cid, sid):
        if "data" in frame:
            out[frame["stream"]] = out.get(frame["stream"], b"") + frame["data"]
        if "exit" in frame:
            return frame["exit"], out
    raise AssertionError("attach ended without an exit frame")


def _read_until(it, needle: bytes, buf: bytearray) -> None:
    for frame in it:
        if "data" in frame:
            buf += frame["data"]
            if needle in buf:
                return
        if "exit" in frame:
            break
    raise AssertionError(f"{needle!r} never came: {bytes(buf)!r}")


def test_exec_sees_the_container_and_gets_its_exit_code(manager: ContainerManager):
    c = _running(manager, hostname="boxy")
    manager.exec_start(c["id"], ["sh", "-c", "echo made > /made-by-init"])  # the container's fs, seen next
    script = "echo $(hostname) $$ $(cat /made-by-init) $(id -u):$(id -g) $(pwd) $GREETING; echo oops >&2; exit 7"
    s = manager.exec_start(c["id"], ["sh", "-c", script], user="nobody", workdir="/tmp", env=["GREETING=hi"])
    info, out = _output(manager, c["id"], s["id"])
    assert info["exit_code"] == 7 and info["status"] == "exited"
    host, pid, made, ids, cwd, greeting = out["stdout"].decode().split()
    # its own pid namespace (the init is 1, so the shell's pid is small) and the container's hostname and fs
    assert host == "boxy" and int(pid) < 50 and made == "made"
    assert ids == "65534:65534" and cwd == "/tmp" and greeting == "hi"
    assert out["stderr"] == b"oops\n"
    assert manager.exec_status(c["id"], s["id"])["exit_code"] == 7
    # the pid namespace is the container's: the init (sleep) is pid 1 in it
    s2 = manager.exec_start(c["id"], ["cat", "/proc/1/cmdline"])
    assert _output(manager, c["id"], s2["id"])[1]["stdout"].split(b"\0")[0] == b"sleep"


def test_tty_session_answers_tty_and_follows_resize(manager: ContainerManager):
    c = _running(manager)
    s = manager.exec_start(c["id"], ["sh"], tty=True, rows=30, cols=100)
    it = iter(manager.exec_attach(c["id"], s["id"]))
    buf = bytearray()
    manager.exec_input(c["id"], s["id"], b"tty; stty size\n")
    _read_until(it, b"30 100", buf)
    assert b"/dev/pts/" in buf
    manager.exec_resize(c["id"], s["id"], 41, 123)
    manager.exec_input(c["id"], s["id"], b"stty size; exit 5\n")
    _read_until(it, b"41 123", buf)
    info = manager.exec_wait(c["id"], s["id"], timeout=30)
    assert info["exit_code"] == 5


def test_two_sessions_at_once_and_stdin(manager: ContainerManager):
    c = _running(manager)
    a = manager.exec_start(c["id"], ["cat"], interactive=True)
    b = manager.exec_start(c["id"], ["sh", "-c", "read x; echo got-$x; exit 3"], interactive=True)
    assert {s["id"] for s in manager.exec_list(c["id"]) if s["status"] == "running"} == {a["id"], b["id"]}
    manager.exec_input(c["id"], b["id"], b"bee\n")
    manager.exec_input(c["id"], a["id"], b"ay\n", eof=True)
    info_a, out_a = _output(manager, c["id"], a["id"])
    info_b, out_b = _output(manager, c["id"], b["id"])
    assert (info_a["exit_code"], out_a["stdout"]) == (0, b"ay\n")
    assert (info_b["exit_code"], out_b["stdout"]) == (3, b"got-bee\n")


def test_session_ends_when_the_container_stops(manager: ContainerManager):
    c = _running(manager)
    s = manager.exec_start(c["id"], ["sleep", "1000"])
    manager.kill(c["id"], "SIGKILL")
    info = manager.exec_wait(c["id"], s["id"], timeout=30)
    assert info["status"] == "exited" and info["exit_code"] == 128 + signal.SIGKILL


def test_session_outlives_its_client_and_records_exit(manager: ContainerManager, state_root):
    """The process that asked for the session is gone (a worker killed -9): the monitor still owns it."""
    c = _running(manager)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # the "worker": starts the session and reports its id, then is killed
        try:
            m = ContainerManager(state_root)
            s = m.exec_start(c["id"], ["sh", "-c", "read x; exit 42"], interactive=True)
            os.write(w, s["id"].encode())
        finally:
            os._exit(0)
    os.close(w)
    sid = os.read(r, 100).decode()
    os.close(r)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    assert manager.exec_status(c["id"], sid)["status"] == "running"
    manager.exec_input(c["id"], sid, b"go\n")
    assert manager.exec_wait(c["id"], sid, timeout=30)["exit_code"] == 42
    # recorded on disk by the monitor: known even after it forgets
    assert MonitorClient(state_root).request({"op": "exec_status", "session": sid})["session"]["exit_code"] == 42


def test_exec_refusals_name_the_problem(manager: ContainerManager):
    c = manager.create("busybox", command=["sleep", "1000"])
    with pytest.raises(InvalidState):
        manager.exec_start(c["id"], ["true"])
    manager.start(c["id"])
    with pytest.raises(InvalidConfig) as e:
        manager.exec_start(c["id"], [])
    assert e.value.field == "command"
    with pytest.raises(InvalidConfig) as e:
        manager.exec_start(c["id"], ["true"], user="no-such-user")
    assert e.value.field == "user"
    with pytest.raises(InvalidConfig) as e:
        manager.exec_start(c["id"], ["true"], env=["NOEQUALS"])
    assert e.value.field == "env"
    with pytest.raises(ContainerError) as e:
        manager.exec_start(c["id"], ["/no/such/program"])
    assert "/no/such/program" in str(e.value) and "no such file" in str(e.value)
    s = manager.exec_start(c["id"], ["true"])
    other = _running(manager)
    with pytest.raises(ContainerError):  # a session is reached only through its own container
        manager.exec_status(other["id"], s["id"])


def test_exec_through_the_seam_under_runc(manager: ContainerManager):
    """The same sessions with runc behind the runtime seam (its `exec --detach --console-socket`)."""
    from workers.engine.containers import runtime_probe

    why = runtime_probe.problem("runc")
    if why is not None:
        pytest.skip(f"runc does not work here: {why}")
    c = _running(manager, runtime="runc")
    s = manager.exec_start(c["id"], ["sh", "-c", "echo $(id -u); exit 4"], user="nobody")
    info, out = _output(manager, c["id"], s["id"])
    assert info["exit_code"] == 4 and out["stdout"] == b"65534\n"
    t = manager.exec_start(c["id"], ["sh"], tty=True, rows=20, cols=70)
    it = iter(manager.exec_attach(c["id"], t["id"]))
    manager.exec_input(c["id"], t["id"], b"stty size; exit 2\n")
    _read_until(it, b"20 70", bytearray())
    assert manager.exec_wait(c["id"], t["id"], timeout=30)["exit_code"] == 2


def test_exec_process_holds_only_its_stdio(manager: ContainerManager):
    """The monitor forks to run the exec: none of its descriptors (sockets, other containers' terminals) leak."""
    c = _running(manager, tty=True)  # the monitor holds this container's pty master
    s = manager.exec_start(c["id"], ["sh", "-c", "ls /proc/$$/fd; true"])  # `; true`: sh does not exec ls
    info, out = _output(manager, c["id"], s["id"])
    assert info["exit_code"] == 0 and sorted(out["stdout"].split()) == [b"0", b"1", b"2"], out


def test_sessions_of_a_restarted_monitor_are_recorded_as_lost(manager: ContainerManager, state_root):
    from tests.engine.monitor.conftest import stop_pid

    c = _running(manager)
    s = manager.exec_start(c["id"], ["sleep", "1000"])
    stop_pid(manager.monitor.pid())  # the monitor dies (its stdio of the session with it)
    manager.monitor.ensure_running()
    info = manager.exec_status(c["id"], s["id"])
    assert info["status"] == "exited" and info["exit_code"] is None and "monitor restarted" in info["error"]
