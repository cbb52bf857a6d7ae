"""A container's exit: the exit record, OOM kills, waiters and attached clients told."""

from __future__ import annotations

import json
import os
import sys
import time

from workers.engine.monitor import changes, layout
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.procfs import cgroup_oom_kills
from workers.engine.monitor.records import Container

UNKNOWN_EXIT = -1


class ExitsMixin:
    """Part of Monitor: what happens when a container's init ends."""

    def _container_exited(self, c: Container, code: int, reason: str | None = None) -> None:
        # Inside its own pid namespace every process has died before the init is reaped, so the
        # pipes hold all the output there will be; read it before writing the exit record.
        self._drain_streams(c)
        if c.tty_master is not None and c.tty_master in c.streams:
            self._end_stream(c, c.tty_master)
        c.oom_killed = self._oom_killed(c)
        c.exit_code = code
        c.reason = reason
        c.status = "exited"
        c.finished_at = rfc3339_nano()
        c.started_at = c.started_at or c.finished_at
        self._write_exit(c)
        if c.log is not None and not c.streams and c not in self.log_blocked:  # else logfull.py closes it
            c.log.close()
        info = c.info()
        for cl, _ in c.waiters:
            self._reply(cl, {"ok": True, "container": info})
        c.waiters.clear()
        self.waiting.discard(c)
        for cl in c.attached:
            self._send(cl, (json.dumps({"exit": info}) + "\n").encode())
            cl.close_after_flush = True
            cl.attached_to = None
            self._flush_client(cl)
        c.attached.clear()
        if c.auto_remove:
            self._spawn_remover(c)

    def _write_exit(self, c: Container) -> bool:
        """The exit record, the container's record, then the change note. A disk that refuses them (full) must not
        end this loop: the exit is known here meanwhile (status, wait), and they are tried again every second."""
        record = {"exit_code": c.exit_code, "oom_killed": c.oom_killed, "finished_at": c.finished_at,
                  "started_at": c.started_at, "pid": c.pid}
        if c.reason:
            record["reason"] = c.reason
        try:
            layout.write_json_atomic(layout.exit_path(self.root, c.id), record)
            self._persist(c)
            changes.note(self.root, c.id)  # after the record: whoever reads the note finds it
        except OSError as exc:
            if c not in self.exits_unwritten:
                print(f"berth-monitor: {c.id}: cannot write its exit record: {exc}; trying again", file=sys.stderr)
            self.exits_unwritten[c] = time.monotonic() + 1.0
            return False
        self.exits_unwritten.pop(c, None)
        return True

    def _retry_unwritten_exits(self) -> None:
        now = time.monotonic()
        for c, due in list(self.exits_unwritten.items()):
            if now >= due and c.status == "exited" and self._write_exit(c):
                print(f"berth-monitor: {c.id}: exit record written", file=sys.stderr)

    def _spawn_remover(self, c: Container) -> None:
        """`run --rm -d`: the engine removes the container in a process of its own (never in this loop: an
        unmount or a large tree would stall every other container's logs); it is reaped like any helper."""
        argv = [sys.executable, "-m", "workers.engine.containers.autoremove", str(self.root), c.id]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._spawn(argv, null, null, 2)  # its complaints go to the monitor's log
        except OSError as exc:
            print(f"berth-monitor: cannot spawn the remover of {c.id}: {exc}", file=sys.stderr, flush=True)
        finally:
            os.close(null)

    def _oom_killed(self, c: Container) -> bool:
        """Asked before anything deletes the cgroup: the engine deletes only after the exit record."""
        try:
            known = c.runtime.oom_killed(c.id) if c.runtime is not None else None
        except Exception:
            known = None  # not there yet, or it does not know the container: ask the kernel directly
        if known is not None:
            return known
        return bool(cgroup_oom_kills(c.cgroups))

    def _adopted_exit(self, c: Container) -> None:
        self.sel.unregister(c.pidfd)
        os.close(c.pidfd)
        c.pidfd = None
        self._container_exited(c, UNKNOWN_EXIT,
                               "exit status unknown: the monitor was restarted while the container ran")
