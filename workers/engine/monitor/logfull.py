"""When the log's disk is full: the container is never killed, nor held for good.

A write that fails (ENOSPC, EDQUOT, EIO...) keeps the bytes it could not write, and the monitor stops reading
that container's pipes: the pipe fills and the container waits in write(2), as behind a slow disk, so a short
episode loses nothing. Once a second the monitor tries the kept bytes again; when they are written it reads the
pipes again. If the disk still takes nothing after the container's hold time (`log_full_hold`, default
BERTH_LOG_FULL_HOLD or 10 s), the monitor reads the pipes again and drops what it reads, counting the lines (the
live view still gets them): the container runs on. The line the disk cut short is kept and finished first, so the
file holds whole JSON lines; then a marker line on stderr says how many lines were dropped, and logging goes on.
Docker's json-file and conmon drop at once (an error in the daemon's log, nothing in the container's); Berth holds
first and leaves the marker. The container's status says why meanwhile (`log_error`, `log_dropped`), and so does
the monitor's log, once per episode.
"""

from __future__ import annotations

import os
import selectors
import sys
import time

from workers.engine.monitor.jsonlog import LogWriteError, encode_entry, rfc3339_nano
from workers.engine.monitor.records import Container

RETRY_EVERY = 1.0
HOLD_SECONDS = float(os.environ.get("BERTH_LOG_FULL_HOLD", "10"))


def _lines(blobs: list[bytes]) -> int:
    return sum(b.count(b"\n") for b in blobs)


def dropped_marker(count: int, why: str) -> bytes:
    """The json-file line that stands for `count` dropped lines."""
    text = f"berth: {count} line(s) of output dropped: the log could not be written ({why})\n"
    return encode_entry("stderr", text.encode(), rfc3339_nano())[1]


class LogFullMixin:
    """Part of Monitor: holding, then dropping, a container's output while its log cannot be written."""

    def _log_write(self, c: Container, blob: bytes) -> None:
        """Write encoded lines to c's log, or keep them and pause the container's pipes, or count them dropped."""
        if c.log_dropping:
            c.log_dropped += blob.count(b"\n")
            return
        if c.log_pending:
            c.log_pending.append(blob)  # behind what waits already: order is kept
            return
        try:
            c.log.write_blob(blob)
        except LogWriteError as exc:
            self._cut(c, blob, exc)
            c.log_pending.append(exc.rest)
            self._pause_output(c, exc)

    @staticmethod
    def _cut(c: Container, blob: bytes, exc: LogWriteError) -> None:
        written = len(blob) - len(exc.rest)
        if written:  # the file now ends where the disk stopped: inside a line unless at its newline
            c.log_midline = blob[written - 1] != 0x0A

    def _flush_pending(self, c: Container) -> LogWriteError | None:
        """Write what waits, oldest first; the error that stopped it, or None once all is written."""
        while c.log_pending:
            blob = c.log_pending[0]
            try:
                c.log.write_blob(blob)
            except LogWriteError as exc:
                self._cut(c, blob, exc)
                c.log_pending[0] = exc.rest
                return exc
            c.log_midline = False
            c.log_pending.pop(0)
        return None

    def _pause_output(self, c: Container, exc: OSError) -> None:
        c.log_why = exc.strerror or str(exc)
        c.log_error = (f"cannot write the log {c.log_path}: {exc.strerror or exc}; output is held until it can "
                       f"(for {c.log_full_hold:g} s, then dropped and counted)")
        print(f"berth-monitor: {c.id}: {c.log_error}", file=sys.stderr, flush=True)
        for fd in c.streams:
            if fd not in c.paused:
                self.sel.unregister(fd)
                c.paused.add(fd)
        now = time.monotonic()
        c.log_blocked_since = now
        self.log_blocked[c] = now + min(RETRY_EVERY, c.log_full_hold)

    def _start_dropping(self, c: Container, exc: OSError) -> None:
        """Held long enough: read the pipes again and drop what waits, except the end of the line the disk cut."""
        keep: list[bytes] = []
        if c.log_midline and c.log_pending:
            first = c.log_pending[0]
            end = first.find(b"\n") + 1
            keep = [first[:end]]
            c.log_pending[0] = first[end:]
        c.log_dropped += _lines(c.log_pending)
        c.log_pending = keep
        c.log_dropping = True
        c.log_error = (f"cannot write the log {c.log_path}: {exc.strerror or exc}; output is dropped (and counted) "
                       "until it can")
        print(f"berth-monitor: {c.id}: {c.log_error}", file=sys.stderr, flush=True)
        self._read_again(c)

    def _read_again(self, c: Container) -> None:
        for fd in c.paused:
            self.sel.register(fd, selectors.EVENT_READ, ("stream", c))
        c.paused.clear()

    def _retry_blocked_logs(self) -> None:
        now = time.monotonic()
        for c, due in list(self.log_blocked.items()):
            if now < due:
                continue
            exc = self._flush_pending(c)
            if exc is None and c.log_dropped:
                c.log_pending.append(dropped_marker(c.log_dropped, c.log_why))
                c.log_dropped_total += c.log_dropped
                c.log_dropped = 0
                exc = self._flush_pending(c)
            if exc is not None:
                self.log_blocked[c] = now + RETRY_EVERY
                if not c.log_dropping and now - (c.log_blocked_since or now) >= c.log_full_hold:
                    self._start_dropping(c, exc)
                continue
            del self.log_blocked[c]
            c.log_error = None
            c.log_blocked_since = None
            c.log_dropping = False
            if c.status == "exited" and not c.streams:
                c.log.close()
            print(f"berth-monitor: {c.id}: the log is written again", file=sys.stderr, flush=True)
            self._read_again(c)

    def _log_retry_timeout(self) -> float | None:
        if not self.log_blocked:
            return None
        return max(0.0, min(self.log_blocked.values()) - time.monotonic())
