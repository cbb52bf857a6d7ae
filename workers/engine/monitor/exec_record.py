"""An exec session as the monitor holds it (monitor/exec_sessions.py runs them): its record, where that is
kept on disk, the wire frame, and the pieces that touch the kernel (the runtime's exec in a fork, a pty's size).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import struct
import termios
from collections import deque

from workers.engine.monitor import forking, layout
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.records import Client


def sessions_dir(root) -> os.PathLike:
    return layout.monitor_dir(root) / "exec"


def session_path(root, sid: str):
    return sessions_dir(root) / f"{sid}.json"


class ExecSession:
    """One exec'd process and its stdio, as the monitor holds them."""

    def __init__(self, sid: str, cid: str, process: dict, interactive: bool):
        self.id = sid
        self.container = cid
        self.process = process
        self.tty = bool(process.get("terminal"))
        self.interactive = interactive or self.tty
        self.status = "starting"  # starting -> running -> exited
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.error: str | None = None
        self.created_at = rfc3339_nano()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.pid_file = ""
        self.process_file = ""
        self.console_path: str | None = None
        self.console_listener: socket.socket | None = None
        self.master: int | None = None
        self.stdin_w: int | None = None
        self.streams: dict[int, str] = {}  # fd -> "stdout" | "stderr"
        self.size: tuple[int, int] | None = None
        self.op_done = False
        self.early: list[tuple[str, bytes]] = []  # output before the runtime confirmed the start
        self.chunks: deque[tuple[int, str, bytes]] = deque()  # (offset, stream, data), the scrollback
        self.offset = 0  # bytes of output so far
        self.kept = 0
        self.attached: list[Client] = []
        self.pending: list[Client] = []  # exec_start requests waiting for "running"
        self.waiters: list[tuple[Client, float]] = []

    def info(self) -> dict:
        return {"id": self.id, "container": self.container, "args": self.process.get("args"), "tty": self.tty,
                "interactive": self.interactive, "user": self.process.get("user"), "cwd": self.process.get("cwd"),
                "status": self.status, "pid": self.pid, "exit_code": self.exit_code, "error": self.error,
                "created_at": self.created_at, "started_at": self.started_at, "finished_at": self.finished_at,
                "output_bytes": self.offset}


def _frame(obj: dict) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _fork_berth_exec(runtime, cid: str, process: dict, s: ExecSession, stdio: tuple[int, int, int]) -> int:
    """Berth's runtime `exec --detach`, in a fork of the monitor rather than a new interpreter (forking.py):
    exit 0 once the pid file is written, else its error on stderr and exit 1, as the command line."""
    verb = functools.partial(runtime.rt.exec, cid, process=process, stdin=0, stdout=1, stderr=2, detach=True,
                             pid_file=s.pid_file, console_socket=s.console_path)
    pid, gate = forking.fork_verb(verb, stdio, "berth-exec")
    forking.release(gate)  # nothing to write down first: a next monitor does not take exec sessions over
    return pid


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
