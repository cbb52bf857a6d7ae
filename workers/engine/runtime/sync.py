"""The sync protocol between `create` (the caller) and the processes it forks (init.py), in one place.

The child sends lines on a message pipe: "pid N" (the init's pid: the caller joins it to the cgroup),
"userns" (the caller writes its uid/gid maps), "hooks" (the caller runs prestart and createRuntime
hooks), "ready" (set up; the init blocks on exec.fifo until `start`) or "error TEXT". The caller answers
"ok" or "fail" on a second pipe to pid, userns and hooks. Child side: send, wait_ack; caller side:
_read_line, _ack.
"""

from __future__ import annotations

import os

# The name (/proc/PID/comm) of create's intermediate process and of the init it forks, set before that
# fork: both keep create's command line until the init execs, and a monitor that must find a create
# among its children by command line (monitor/recovery.py) tells them apart by it.
INIT_COMM = "berth-init"


def send(fd: int, line: str) -> None:
    os.write(fd, (line.replace("\n", " ") + "\n").encode())


def wait_ack(fd: int) -> None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            raise OSError(32, "runtime went away")
        data += chunk
    if data.strip() != b"ok":
        raise OSError(125, "aborted by the runtime")


def _ack(fd: int, answer: bytes) -> None:
    """Answer the init. If it has died, its "error" line (or EOF) is still in the message pipe and is
    what the user must see, not the EPIPE of this write."""
    try:
        os.write(fd, answer + b"\n")
    except BrokenPipeError:
        pass


def _read_line(fd: int, buf: bytearray) -> str | None:
    while b"\n" not in buf:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buf += chunk
    i = buf.index(b"\n")
    line = bytes(buf[:i]).decode(errors="replace")
    del buf[: i + 1]
    return line
