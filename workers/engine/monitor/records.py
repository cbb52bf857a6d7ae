"""The monitor's in-memory records: a client connection, a container, a runtime command in flight."""

from __future__ import annotations

import socket

from workers.engine.containers import oci
from workers.engine.monitor.jsonlog import JsonFileLog, LineSplitter, rfc3339_nano


class Client:
    """One connection on the monitor socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.attached_to: str | None = None
        self.close_after_flush = False


class Container:
    def __init__(self, cid: str, bundle: str, runtime_cmd: list[str], log_path: str, tty: bool):
        self.id = cid
        self.bundle = bundle
        self.runtime_cmd = runtime_cmd
        self.runtime: oci.OCIRuntime | None = None  # the seam for runtime_cmd (set by whoever makes the record)
        self.log_path = log_path
        self.tty = tty
        self.status = "creating"  # creating -> created -> running -> exited
        self.pid: int | None = None
        self.start_ticks: int | None = None
        self.cgroups: dict[str, str] = {}
        self.created_at = rfc3339_nano()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.exit_code: int | None = None
        self.oom_killed = False
        self.reason: str | None = None
        self.log: JsonFileLog | None = None
        self.streams: dict[int, tuple[str, LineSplitter]] = {}  # fd -> (stream name, splitter)
        self.runtime_output = bytearray()  # what the runtime wrote before the container started
        self.logging = False
        self.console_listener: socket.socket | None = None
        self.console_path: str | None = None
        self.tty_master: int | None = None
        self.pending_start: list[Client] = []
        self.waiters: list[tuple[Client, float]] = []
        self.attached: list[Client] = []
        self.pidfd: int | None = None  # only for containers adopted after a monitor restart
        self.log_redis_url: str | None = None  # a sink named in the start request (else the env's)
        self.pid_file = ""
        self.hold_keys: dict[int, str] = {}  # fd -> its key at the holder
        self.log_max_size = 10 * 1024 * 1024
        self.log_max_files = 3
        self.log_pending: list[bytes] = []  # encoded lines the log's disk did not take yet (logfull.py)
        self.paused: set[int] = set()  # stream fds not read meanwhile
        self.log_error: str | None = None
        self.log_full_hold = 10.0  # seconds output is held while the log cannot be written, then dropped (logfull.py)
        self.log_blocked_since: float | None = None
        self.log_why = ""  # the write's error, for the marker
        self.log_midline = False  # the log file ends inside a line the disk cut short
        self.log_dropping = False
        self.log_dropped = 0  # lines dropped since the last marker
        self.log_dropped_total = 0
        self.op: dict | None = None  # the runtime command in flight {"kind", "pid", "ticks"}, for a successor
        self.auto_remove = False  # at its exit, spawn the engine's remover (exits.py)

    def info(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "bundle": self.bundle,
            "log_path": self.log_path,
            "tty": self.tty,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "reason": self.reason,
            "log_error": self.log_error,
            "log_dropped": self.log_dropped_total + self.log_dropped,
        }

    def record(self) -> dict:
        return {**self.info(), "runtime_cmd": self.runtime_cmd, "start_ticks": self.start_ticks,
                "cgroups": self.cgroups, "pid_file": self.pid_file, "log_max_size": self.log_max_size,
                "log_max_files": self.log_max_files, "log_full_hold": self.log_full_hold, "log_redis_url": self.log_redis_url, "op": self.op,
                "auto_remove": self.auto_remove}


class RuntimeOp:
    """A runtime command in flight (create/start) and what to do when it exits."""

    def __init__(self, container: Container, kind: str, errfile, deadline: float):
        self.container = container
        self.kind = kind
        self.errfile = errfile
        self.deadline = deadline
