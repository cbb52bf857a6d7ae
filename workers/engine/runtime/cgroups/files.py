"""Reading and writing cgroup control files (a write is one write(2), as the kernel wants)."""

from __future__ import annotations

import os


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise OSError(e.errno, f"cgroup: writing {value!r} to {path}: {os.strerror(e.errno)}") from None
    finally:
        os.close(fd)
