"""The monitor's records on disk, and what it believes again after a restart."""

from __future__ import annotations

import json
import os
import selectors

from workers.engine.containers import oci
from workers.engine.monitor import layout
from workers.engine.monitor.exits import UNKNOWN_EXIT
from workers.engine.monitor.procfs import proc_start_ticks
from workers.engine.monitor.records import Container


class RecoveryMixin:
    """Part of Monitor: persisting records, dropping containers, recovering after a restart."""

    def _persist(self, c: Container) -> None:
        layout.write_json_atomic(layout.records_dir(self.root) / f"{c.id}.json", c.record())

    def _drop(self, c: Container) -> None:
        for fd in list(c.streams):
            self.sel.unregister(fd)
            self.fd_owner.pop(fd, None)
            os.close(fd)
        c.streams.clear()
        self._close_console_listener(c)
        if c.log is not None:
            c.log.close()
        if c.pid is not None:
            self.by_pid.pop(c.pid, None)
        if c.pidfd is not None:
            self.sel.unregister(c.pidfd)
            os.close(c.pidfd)
        if self.containers.get(c.id) is c:
            del self.containers[c.id]
        try:
            (layout.records_dir(self.root) / f"{c.id}.json").unlink()
        except FileNotFoundError:
            pass

    def recover(self) -> None:
        """After a restart: what the records say ran is checked against /proc, never trusted."""
        for path in sorted(layout.records_dir(self.root).glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            c = Container(rec["id"], rec.get("bundle", ""), rec.get("runtime_cmd") or [],
                          rec.get("log_path", ""), bool(rec.get("tty")))
            for key in ("pid", "start_ticks", "created_at", "started_at", "finished_at", "exit_code",
                        "oom_killed", "reason"):
                setattr(c, key, rec.get(key))
            c.cgroups = rec.get("cgroups") or {}
            c.runtime = oci.from_command(c.runtime_cmd, self.root / "runtime")
            c.oom_killed = bool(c.oom_killed)
            c.status = rec.get("status", "exited")
            self.containers[c.id] = c
            if c.status == "exited" and layout.exit_path(self.root, c.id).exists():
                continue
            alive = c.pid is not None and proc_start_ticks(c.pid) == c.start_ticks and c.start_ticks is not None
            if alive:
                try:
                    c.pidfd = os.pidfd_open(c.pid)
                except OSError:
                    alive = False
            if alive:
                # Not our child any more: its output pipes died with the old monitor and its exit
                # status will go to whoever reaps it. Watch it so we never call it running when not.
                c.status = "running"
                self.sel.register(c.pidfd, selectors.EVENT_READ, ("pidfd", c))
                self._persist(c)
            else:
                self._container_exited(c, UNKNOWN_EXIT, "container ended while the monitor was not running")
