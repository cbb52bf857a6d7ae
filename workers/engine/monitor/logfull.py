"""When the log's disk is full: nothing is lost and the container is not killed.

A write that fails (ENOSPC, EDQUOT, EIO...) keeps the bytes it could not write, and the monitor stops
reading that container's pipes: the pipe fills, and the container waits in write(2) exactly as it
would behind a slow disk. Once a second the monitor tries the kept bytes again; when they are written
it reads the pipes again. Meanwhile the container's status says why (`log_error`), and so does the
monitor's log, once per episode.
"""

from __future__ import annotations

import selectors
import sys
import time

from workers.engine.monitor.jsonlog import LogWriteError
from workers.engine.monitor.records import Container

RETRY_EVERY = 1.0


class LogFullMixin:
    """Part of Monitor: holding a container's output back while its log cannot be written."""

    def _log_write(self, c: Container, blob: bytes) -> None:
        """Write encoded lines to c's log, or keep them and pause the container's pipes."""
        if c.log_pending:
            c.log_pending.append(blob)  # behind what waits already: order is kept
            return
        try:
            c.log.write_blob(blob)
        except LogWriteError as exc:
            c.log_pending.append(exc.rest)
            self._pause_output(c, exc)

    def _pause_output(self, c: Container, exc: OSError) -> None:
        c.log_error = f"cannot write the log {c.log_path}: {exc.strerror or exc}; output is held until it can"
        print(f"berth-monitor: {c.id}: {c.log_error}", file=sys.stderr, flush=True)
        for fd in c.streams:
            if fd not in c.paused:
                self.sel.unregister(fd)
                c.paused.add(fd)
        self.log_blocked[c] = time.monotonic() + RETRY_EVERY

    def _retry_blocked_logs(self) -> None:
        now = time.monotonic()
        for c, due in list(self.log_blocked.items()):
            if now < due:
                continue
            while c.log_pending:
                try:
                    c.log.write_blob(c.log_pending[0])
                except LogWriteError as exc:
                    c.log_pending[0] = exc.rest
                    self.log_blocked[c] = now + RETRY_EVERY
                    break
                c.log_pending.pop(0)
            if c.log_pending:
                continue
            del self.log_blocked[c]
            c.log_error = None
            if c.status == "exited" and not c.streams:
                c.log.close()
            print(f"berth-monitor: {c.id}: the log is written again", file=sys.stderr, flush=True)
            for fd in c.paused:
                self.sel.register(fd, selectors.EVENT_READ, ("stream", c))
            c.paused.clear()

    def _log_retry_timeout(self) -> float | None:
        if not self.log_blocked:
            return None
        return max(0.0, min(self.log_blocked.values()) - time.monotonic())
