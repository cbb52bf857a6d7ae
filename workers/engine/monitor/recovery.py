"""The monitor's records on disk, and what it believes again after a restart."""

from __future__ import annotations

import json
import os
import selectors
import sys
from pathlib import Path

from workers.engine.containers import oci
from workers.engine.monitor import layout
from workers.engine.monitor.exits import UNKNOWN_EXIT
from workers.engine.monitor.jsonlog import JsonFileLog, rfc3339_nano
from workers.engine.monitor.procfs import proc_cgroups, proc_parent, proc_start_ticks
from workers.engine.monitor.records import Container
from workers.engine.monitor.redis_sink import RedisStreamSink
from workers.engine.runtime.sync import INIT_COMM


class RecoveryMixin:
    """Part of Monitor: persisting records, dropping containers, recovering after a restart."""

    def _persist(self, c: Container, durable: bool = True) -> None:
        """durable=False: no fsync (the record need only outlive this process, not the machine)."""
        layout.write_json_atomic(layout.records_dir(self.root) / f"{c.id}.json", c.record(), durable=durable)

    def _drop(self, c: Container) -> None:
        self._unhold_all(c)
        for sink in self.sinks.values():
            sink.forget(c.id)
        self.log_blocked.pop(c, None)
        self.exits_unwritten.pop(c, None)
        for fd in list(c.streams):
            if fd not in c.paused:
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
        self.waiting.discard(c)
        if self.containers.get(c.id) is c:
            del self.containers[c.id]
        try:
            (layout.records_dir(self.root) / f"{c.id}.json").unlink()
        except FileNotFoundError:
            pass

    def recover(self) -> None:
        """After a restart: what the records say ran is checked against /proc and the holder, never
        trusted. Containers still alive are taken back with their pipes (kept by the holder); exits the
        holder reaped meanwhile are recorded with their real status; a start cut short is finished."""
        for path in sorted(layout.records_dir(self.root).glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            c = self._container_from_record(rec)
            self.containers[c.id] = c
            if c.status == "exited" and layout.exit_path(self.root, c.id).exists():
                if c.auto_remove:
                    self._spawn_remover(c)  # the last monitor may have died before its remover did the work
                continue
            if c.log_path:
                c.log = JsonFileLog(c.log_path, c.log_max_size, c.log_max_files)
            self._adopt_streams(c)
            if c.status in ("creating", "created"):
                self._resume_start(c)
                continue
            c.status, c.logging = "running", True
            if c.pid is not None:
                self.by_pid[c.pid] = c
            else:
                self._container_exited(c, UNKNOWN_EXIT, "container ended while the monitor was not running")
        for msg in list(self.holder_exits.values()):  # reaped by the holder while no monitor ran
            self._holder_exit(msg)
        self.holder_exits.clear()
        for c in [c for c in self.by_pid.values() if c.status == "running"]:
            self._check_adopted(c)
        self._release_unclaimed_fds()

    def _container_from_record(self, rec: dict) -> Container:
        c = Container(rec["id"], rec.get("bundle", ""), rec.get("runtime_cmd") or [],
                      rec.get("log_path", ""), bool(rec.get("tty")))
        for key in ("pid", "start_ticks", "created_at", "started_at", "finished_at", "exit_code",
                    "oom_killed", "reason", "op", "log_redis_url"):
            setattr(c, key, rec.get(key))
        c.pid_file = rec.get("pid_file") or str(layout.records_dir(self.root) / f"{c.id}.pid")
        c.log_max_size = int(rec.get("log_max_size", c.log_max_size))
        c.log_full_hold = float(rec.get("log_full_hold", c.log_full_hold))
        c.log_max_files = int(rec.get("log_max_files", c.log_max_files))
        c.cgroups = rec.get("cgroups") or {}
        c.runtime = oci.from_command(c.runtime_cmd, self.root / "runtime")
        c.oom_killed = bool(c.oom_killed)
        c.auto_remove = bool(rec.get("auto_remove"))
        c.status = rec.get("status", "exited")
        if c.log_redis_url and c.log_redis_url not in self.sinks:
            self.sinks[c.log_redis_url] = RedisStreamSink(c.log_redis_url)
        return c

    def _check_adopted(self, c: Container) -> None:
        """A container believed running whose exit the holder has not reported."""
        alive = c.start_ticks is not None and proc_start_ticks(c.pid) == c.start_ticks
        if alive and self.holder is not None and proc_parent(c.pid) == os.getppid():
            self._persist(c)  # the holder is its parent: its exit will come from there
            return
        if alive:
            try:
                c.pidfd = os.pidfd_open(c.pid)
            except OSError:
                alive = False
        if alive:
            # Not a child of our holder (a monitor run without one): watch it so we never call it
            # running when it is not; its exit status goes to whoever reaps it.
            self.sel.register(c.pidfd, selectors.EVENT_READ, ("pidfd", c))
            self._persist(c)
            return
        self.by_pid.pop(c.pid, None)
        self._container_exited(c, UNKNOWN_EXIT, "container ended while the monitor was not running")

    def _resume_start(self, c: Container) -> None:
        """A start the previous monitor did not finish: wait for its runtime command, or ask the
        runtime how far it got and go on from there."""
        c.logging = c.status == "created"
        if c.pid is not None:
            self.by_pid[c.pid] = c
        op = c.op or {}
        if op and op.get("pid") is None and op.get("argv"):  # killed between spawning it and writing its pid down
            op.update(_find_child(os.getppid(), op.get("argv") or []))
        pid = op.get("pid")
        print(f"berth-monitor: resuming the start of {c.id} ({c.status}, runtime {op.get('kind')} {pid})",
              file=sys.stderr, flush=True)
        if pid is not None:
            ex = self.holder_exits.pop(pid, None)
            if ex is not None and ex.get("ticks") == op.get("ticks"):
                self._resume_op(c, op["kind"], pid)
                self._op_done(pid, int(ex["status"]))
                self._ack_exit(pid)
                return
            if self.holder is not None and op.get("ticks") and proc_start_ticks(pid) == op["ticks"]:
                self._resume_op(c, op["kind"], pid)
                return
        try:
            status = c.runtime.state(c.id).get("status")
        except Exception:  # noqa: BLE001 - not created, or the runtime does not know it
            status = None
        if status in ("created", "running", "paused"):
            try:
                c.pid = int(Path(c.pid_file).read_text().strip())
            except (OSError, ValueError):
                c.pid = None
        if c.pid is None or status not in ("created", "running", "paused"):
            self._fail_start(c, "the monitor stopped while starting the container, before it was created")
            return
        c.start_ticks = c.start_ticks or proc_start_ticks(c.pid)
        c.cgroups = c.cgroups or proc_cgroups(c.pid)
        self.by_pid[c.pid] = c
        c.logging = True
        if status == "created":
            c.status = "created"
            self._persist(c)
            self._run_op(c, "start")
        else:
            c.status = "running"
            c.started_at = c.started_at or rfc3339_nano()
            self._persist(c)


def _find_child(parent: int, argv: list[str]) -> dict:
    """{"pid", "ticks"} of the child of `parent` running exactly `argv`, or {}. Berth's runtime forks
    its container's init from `create` without an exec, so an init reparented here has the same command
    line: it is told apart by its name (runtime/sync.py INIT_COMM), and the oldest match is taken (the
    create starts before anything it forks)."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return {}
    found: list[tuple[int, int]] = []
    for child in map(int, children):
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() != want:
                continue
            if Path(f"/proc/{child}/comm").read_text().strip() == INIT_COMM:
                continue
        except OSError:
            continue
        ticks = proc_start_ticks(child)
        if ticks is not None:
            found.append((ticks, child))
    if not found:
        return {}
    ticks, pid = min(found)
    return {"pid": pid, "ticks": ticks}
