"""The full-disk rules of the monitor's log writer (workers/engine/monitor/logfull.py), on a log whose "disk" takes
a set number of bytes: held within the hold time, then dropped and counted, the cut line finished first, a marker
for what went, whole JSON lines throughout. The real tmpfs, container and monitor: test_disk_full.py."""

from __future__ import annotations

import errno
import json
import os
import selectors

from workers.engine.monitor import logfull
from workers.engine.monitor.jsonlog import LogWriteError, encode_entry
from workers.engine.monitor.records import Container


class SmallDisk:
    """A log that keeps what fits in `free` bytes and fails the rest with ENOSPC, as write(2) does."""

    def __init__(self, free: int) -> None:
        self.data = bytearray()
        self.free = free

    def write_blob(self, blob: bytes) -> None:
        n = min(len(blob), self.free)
        self.data += blob[:n]
        self.free -= n
        if n < len(blob):
            raise LogWriteError(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), blob[n:])

    def close(self) -> None:
        pass


class Writer(logfull.LogFullMixin):
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.log_blocked: dict[Container, float] = {}


def lines(first: int, n: int) -> bytes:
    return b"".join(encode_entry("stdout", f"line-{i}\n".encode(), "2026-12-04T00:00:00.000000000Z")[1]
                    for i in range(first, first + n))


def setup(free: int, hold: float) -> tuple[Writer, Container, SmallDisk, int, int]:
    w, c, disk = Writer(), Container("c", "/b", [], "/log", False), SmallDisk(free)
    c.log, c.log_full_hold = disk, hold
    r, wr = os.pipe()
    c.streams[r] = ("stdout", None)
    w.sel.register(r, selectors.EVENT_READ, ("stream", c))
    return w, c, disk, r, wr


def retry_now(w: Writer) -> None:
    for c in w.log_blocked:
        w.log_blocked[c] = 0.0
    w._retry_blocked_logs()


def test_held_within_the_hold_time_nothing_lost():
    w, c, disk, r, wr = setup(free=100, hold=3600)
    try:
        w._log_write(c, lines(0, 10))
        assert c.log_error and "held" in c.log_error and r in c.paused  # the pipe is not read: the writer waits
        w._log_write(c, lines(10, 5))
        retry_now(w)
        assert r in c.paused and not c.log_dropping
        disk.free = 10**6  # space returns
        retry_now(w)
        assert c.log_error is None and not c.paused and not w.log_blocked
        assert [json.loads(x)["log"] for x in disk.data.decode().splitlines()] == [f"line-{i}\n" for i in range(15)]
    finally:
        os.close(r)
        os.close(wr)


def test_past_the_hold_time_dropped_counted_marked_and_the_cut_line_finished():
    w, c, disk, r, wr = setup(free=100, hold=0)  # 100 bytes: the second line is cut
    try:
        w._log_write(c, lines(0, 10))
        retry_now(w)  # still full, held for 0 s: dropping
        assert c.log_dropping and "dropped" in c.log_error and not c.paused, "the pipe is read again"
        w._log_write(c, lines(10, 20))
        assert c.info()["log_dropped"] == 8 + 20  # lines 2..9 waiting, then 20 read meanwhile
        retry_now(w)
        assert c.log_dropping
        disk.free = 10**6
        retry_now(w)
        assert c.log_error is None and not c.log_dropping and not w.log_blocked
        got = [json.loads(x) for x in disk.data.decode().splitlines()]  # whole lines only
        assert [e["log"] for e in got[:2]] == ["line-0\n", "line-1\n"]
        assert got[2]["stream"] == "stderr" and got[2]["log"].startswith("berth: 28 line(s) of output dropped")
        assert "No space left on device" in got[2]["log"] and len(got) == 3
        w._log_write(c, lines(30, 2))  # logging goes on
        assert [json.loads(x)["log"] for x in disk.data.decode().splitlines()[3:]] == ["line-30\n", "line-31\n"]
        assert c.info()["log_dropped"] == 28
    finally:
        os.close(r)
        os.close(wr)


def test_the_monitor_and_the_holder_outlive_a_full_disk_under_their_own_log():
    """Their stderr is monitor.log / holder.log in the state root: on a full disk (here /dev/full, which answers
    every write with ENOSPC) a line is lost, not the process. The control: a plain print dies there."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    says = ("import sys; from workers.engine.monitor.quiet_stderr import QuietStderr; sys.stderr = QuietStderr(); "
            "print('berth-monitor: the log is full', file=sys.stderr, flush=True); "
            "from workers.engine.monitor.holder import log_line; sys.stderr = sys.__stderr__; log_line('held'); "
            "print('alive')")
    plain = "import sys; print('berth-monitor: the log is full', file=sys.stderr, flush=True); print('alive')"
    with open("/dev/full", "w") as full:
        ran = [subprocess.run([sys.executable, "-c", code], cwd=repo, stdout=subprocess.PIPE, stderr=full, text=True,
                              timeout=60) for code in (says, plain)]
    assert (ran[0].returncode, ran[0].stdout) == (0, "alive\n")
    assert ran[1].returncode != 0 and ran[1].stdout == ""
