"""kill -9 of the monitor: no container notices, and the next monitor takes every one back, pipes and
terminals included; output written and exits that happened while no monitor ran are not lost."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def _until(predicate, what: str, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not os.path.exists(f"/proc/{pid}"), f"monitor {pid} gone")


def _logs(monitor, cid: str) -> list[str]:
    path = monitor.root / "containers" / cid / "logs" / "container.log"
    if not path.exists():
        return []
    return [json.loads(line)["log"] for line in path.read_text().splitlines()]


# Waits for /go (made by the test while no monitor runs), then writes; /ack says it wrote everything.
TALKER = ("echo before; while [ ! -e /go ]; do usleep 5000; done; i=0; while [ $i -lt 200 ]; do "
          "echo during-$i; echo err-$i >&2; i=$((i+1)); done; touch /ack; "
          "trap 'echo bye; exit 0' TERM; while true; do usleep 20000; done")
ENDER = "echo up; while [ ! -e /go ]; do usleep 5000; done; echo last-words; exit 7"
TERMINAL = "echo tty-up; while [ ! -e /go ]; do usleep 5000; done; echo tty-during; read x; echo got=$x"


def test_kill9_of_the_monitor_loses_no_line_and_no_exit(monitor, bundle):
    talker, ender, term = (bundle(["sh", "-c", s], overlay=False) for s in (TALKER, ENDER, TERMINAL))
    term.edit(lambda c: c["process"].update(terminal=True))
    pids = {
        "talker": monitor.start("talker", talker)["pid"],
        "ender": monitor.start("ender", ender)["pid"],
        "term": monitor.start("term", term, tty=True)["pid"],
    }
    _until(lambda: _logs(monitor, "talker") == ["before\n"] and _logs(monitor, "ender") == ["up\n"]
           and _logs(monitor, "term") == ["tty-up\r\n"], "first lines logged")
    old = monitor.client.pid()
    holder = monitor.client.holder_pid()
    _kill9(old)

    # No monitor runs now: the containers write, and one of them ends.
    for b in (talker, ender, term):
        (Path(b.path) / "rootfs" / "go").touch()
    _until(lambda: (Path(talker.path) / "rootfs" / "ack").exists(), "talker wrote everything")
    _until(lambda: not os.path.exists(f"/proc/{pids['ender']}"), "ender ended (reaped by the holder)")
    assert not monitor.client.is_running()

    monitor.client.ensure_running()
    assert monitor.client.pid() != old and monitor.client.holder_pid() == holder
    # the exit that happened meanwhile, with its real status and the output it wrote before
    st = monitor.client.wait("ender", timeout=30)
    assert st["exit_code"] == 7 and not st.get("reason")
    assert monitor.exit_record("ender")["exit_code"] == 7
    assert _logs(monitor, "ender") == ["up\n", "last-words\n"]
    # every line the talker wrote while no monitor ran, in order per stream; it never noticed
    want_out = ["before\n"] + [f"during-{i}\n" for i in range(200)]
    want_err = [f"err-{i}\n" for i in range(200)]

    def streams():
        path = monitor.root / "containers" / "talker" / "logs" / "container.log"
        entries = [json.loads(x) for x in path.read_text().splitlines()]
        return ([e["log"] for e in entries if e["stream"] == "stdout"],
                [e["log"] for e in entries if e["stream"] == "stderr"])

    _until(lambda: streams() == (want_out, want_err), "talker's lines in the log")
    assert monitor.client.status("talker")["status"] == "running"
    assert monitor.client.status("talker")["pid"] == pids["talker"]
    # the terminal was taken back too: its output meanwhile is logged and input reaches it
    _until(lambda: "tty-during\r\n" in _logs(monitor, "term"), "terminal output written meanwhile")
    monitor.client.input("term", "again\n")
    assert monitor.client.wait("term", timeout=30)["exit_code"] == 0
    assert "got=again\r\n" in _logs(monitor, "term")
    # and the talker's own exit, later, is the new monitor's to record
    monitor.runtime_call("kill", "talker", "TERM")
    assert monitor.client.wait("talker", timeout=30)["exit_code"] == 0
    assert streams()[0][-1] == "bye\n"


def _runtime_child(monitor_pid: int, verb: str) -> int | None:
    """The pid of the monitor's child running Berth's runtime `verb` for a container: a fork of the monitor
    that names itself berth-<verb> once the monitor has written it down (monitor/forking.py)."""
    try:
        children = Path(f"/proc/{monitor_pid}/task/{monitor_pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() == f"berth-{verb}":
                return int(child)
        except OSError:
            continue
    return None


def _hold_in_hook(b, kind: str, go: Path) -> None:
    """A hook of `kind` that waits for `go`: the runtime's create (createRuntime) or start (poststart) runs
    until the test lets it end, long enough to kill the monitor meanwhile (a forked verb takes a few ms)."""
    b.edit(lambda cfg: cfg.update(hooks={kind: [{"path": "/bin/sh",
                                                "args": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"]}]}))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class _Starter:
    """monitor.start on a thread (it blocks across the monitor's death); join() gives its result."""

    def __init__(self, monitor, cid: str, bundle):
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(monitor, cid, bundle))
        self.thread.start()

    def _run(self, monitor, cid, bundle) -> None:
        try:
            self.result["st"] = monitor.start(cid, bundle)
        except Exception as exc:  # noqa: BLE001 - reported by join()
            self.result["error"] = exc

    def join(self) -> dict:
        self.thread.join(150)
        assert not self.thread.is_alive(), "the start never returned"
        assert "error" not in self.result, self.result.get("error")
        return self.result["st"]


HELLO = ["sh", "-c", "echo hello; while true; do usleep 20000; done"]


@pytest.mark.parametrize("monitor", ["berth"], indirect=True)
@pytest.mark.parametrize("phase", ["create", "start"])
def test_kill9_of_the_monitor_during_a_start(monitor, bundle, phase):
    """Killed while the runtime's create (or start) command runs: the start still completes and the
    caller gets the container running from the next monitor."""
    b = bundle(HELLO, overlay=False)
    go = b.path / "go"
    _hold_in_hook(b, {"create": "createRuntime", "start": "poststart"}[phase], go)
    old = monitor.client.pid()
    starter = _Starter(monitor, "mid", b)
    try:
        _until(lambda: _runtime_child(old, phase), f"the monitor running the runtime's {phase}", limit=60)
        _kill9(old)
        # the next monitor has read the records (it answers only then) while the runtime's verb still runs
        _until(lambda: monitor.client.pid() not in (None, old) and monitor.client.is_running(), "the next monitor")
    finally:
        go.touch()
        st = starter.join()
    assert st["status"] == "running"
    assert monitor.client.pid() != old
    _until(lambda: _logs(monitor, "mid") == ["hello\n"], "output of a container started across monitors")
    monitor.runtime_call("kill", "mid", "KILL")
    assert monitor.client.wait("mid", timeout=30)["exit_code"] == 137


@pytest.mark.parametrize("monitor", ["berth"], indirect=True)
def test_kill9_of_the_monitor_before_it_wrote_down_its_create(monitor, bundle):
    """A record that lost the pid of its create, and the create ended meanwhile: the next monitor asks
    the runtime how far it got and finishes the start. (Written for the window between spawning the
    runtime's command line and writing its pid down, where it once waited for the container's init, which
    had the create's command line, until its 120 s deadline. Berth's runtime now runs in a fork of the
    monitor written down before it runs (monitor/forking.py), so only a record from another monitor, or
    a runtime's command line, can lack the pid; the answer must still be the runtime's.)"""
    b = bundle(HELLO, overlay=False)
    go = b.path / "go"
    _hold_in_hook(b, "createRuntime", go)
    old = monitor.client.pid()
    starter = _Starter(monitor, "mid", b)
    try:
        create = _until(lambda: _runtime_child(old, "create"), "the monitor running the create", limit=60)
        os.kill(old, signal.SIGSTOP)
        go.touch()
        _until(lambda: _state(create) in ("Z", "gone"), "the create done (a zombie of the stopped monitor)")
        record = monitor.root / "monitor" / "containers" / "mid.json"
        rec = json.loads(record.read_text())
        assert rec["status"] == "creating" and rec["op"]["kind"] == "create"
        rec["op"].update(pid=None, ticks=None)  # the pid lost
        record.write_text(json.dumps(rec))
        _kill9(old)
    finally:
        go.touch()  # never left blocking in its hook
        st = starter.join()
    assert st["status"] == "running"
    _until(lambda: _logs(monitor, "mid") == ["hello\n"], "output of a container started across monitors")
    monitor.runtime_call("kill", "mid", "KILL")
    assert monitor.client.wait("mid", timeout=30)["exit_code"] == 137
