"""The per-host monitor daemon.

One process for all containers of a host (a Python interpreter per container would cost
megabytes each). It is a child subreaper, so every container init reparents to it when
the runtime's `create` process exits, and it reaps them itself: that is how it learns the
exit status. It always runs as the child of the host's holder (holder.py), which keeps a copy
of every container's stdio fds and reaps the containers if this process dies, so the next
monitor takes every container back (holding.py, recovery.py). It owns each container's stdout/stderr pipes (or pty master), writes json-file
logs, records `containers/<id>/exit.json`, and answers a JSON-lines protocol on
`<root>/monitor/monitor.sock`: ping, start, status, wait, attach (+ input/resize), forget,
list, shutdown.

Everything runs in one selectors loop; runtime verbs run in child processes (Berth's runtime in a
fork of this one, others by their command line), never waited for in place, so a slow runtime
never stalls the logs of other containers.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import socket
from pathlib import Path

from workers.engine.monitor import forking, layout
from workers.engine.monitor.exec_sessions import ExecMixin, ExecSession
from workers.engine.monitor.exits import UNKNOWN_EXIT, ExitsMixin
from workers.engine.monitor.holding import HoldingMixin
from workers.engine.monitor.logfull import LogFullMixin
from workers.engine.monitor.procfs import (
    cgroup_oom_kills,
    exit_code_of,
    proc_cgroups,
    proc_start_ticks,
    set_child_subreaper,
)
from workers.engine.monitor.protocol import ProtocolMixin
from workers.engine.monitor.records import Client, Container, RuntimeOp
from workers.engine.monitor.recovery import RecoveryMixin
from workers.engine.monitor.redis_sink import RedisStreamSink
from workers.engine.monitor.server import ServerMixin
from workers.engine.monitor.starting import StartMixin
from workers.engine.monitor.streams import StreamsMixin

__all__ = ["Client", "Container", "Monitor", "RuntimeOp", "UNKNOWN_EXIT", "cgroup_oom_kills",
           "exit_code_of", "proc_cgroups", "proc_start_ticks", "run_foreground", "set_child_subreaper"]


class Monitor(ServerMixin, ProtocolMixin, StartMixin, StreamsMixin, ExitsMixin, RecoveryMixin, HoldingMixin,
              LogFullMixin, ExecMixin):
    """The daemon's state; its behaviour lives in the mixins, one module per concern."""

    def __init__(self, root: str | os.PathLike[str]):
        forking.preload()  # the runtime's create/start/exec run in forks of this process (forking.py)
        self.root = Path(root)
        self.sel = selectors.DefaultSelector()
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Container] = {}
        self.ops: dict[int, RuntimeOp] = {}
        self.unclaimed: dict[int, int] = {}  # reaped pids nobody had claimed yet -> status
        self.fd_owner: dict[int, Container] = {}
        self.sessions: dict[str, ExecSession] = {}  # exec sessions (exec_sessions.py)
        self.exec_by_pid: dict[int, ExecSession] = {}
        self.stopping = False
        self.sink = RedisStreamSink.from_env()
        # by URL, for start requests that name one; a request naming the env's URL shares its sink
        self.sinks: dict[str, RedisStreamSink] = {self.sink.url: self.sink} if self.sink else {}
        self.listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self.holder: socket.socket | None = None
        self.held: dict[str, int] = {}
        self.holder_exits: dict[int, dict] = {}
        self.waiting: set[Container] = set()
        self.exits_unwritten: dict[Container, float] = {}  # exit records the disk refused -> next try (exits.py)
        self.log_blocked: dict[Container, float] = {}  # containers whose log cannot be written -> next try  # containers with waiters: per-turn work scales with these, not all


# ---- process life -----------------------------------------------------------------


def _acquire_pid_lock(root: Path) -> int | None:
    """flock on monitor.pid: exactly one monitor per state root. None if another holds it."""
    layout.monitor_dir(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.pid_path(root), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run_foreground(root: str | os.PathLike[str], ready_fd: int | None = None) -> int:
    root = Path(root)
    lock = _acquire_pid_lock(root)
    if lock is None:
        if ready_fd is not None:
            os.write(ready_fd, b"running")
            os.close(ready_fd)
        return 0
    mon = Monitor(root)
    mon.bind()
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    try:
        mon.serve()
    finally:
        try:
            layout.pid_path(root).unlink()
        except FileNotFoundError:
            pass
        os.close(lock)
    return 0
