"""Releasing a flock(2) so that no forked child keeps it.

A flock belongs to the open file description, which fork() shares with the child. Closing the parent's
descriptor releases the lock only when no other descriptor refers to that description, so a process forked
while one of the parent's threads held a lock (billiard forking a replacement pool process while the worker's
reporter thread held a container's lock) went on holding it after the parent closed its own: the child's next
wait for that lock, on a descriptor of its own, waited on itself for ever. LOCK_UN releases it for every copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


def release(fd: int) -> None:
    """Unlock, then close: the lock goes now, whatever copies of `fd` forked children hold."""
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def take(path: str | os.PathLike[str], *, shared: bool = False, blocking: bool = True) -> int | None:
    """flock on `path` (made if missing), held by the returned fd until release(fd); None, holding nothing, when
    `blocking` is off and another holder has it. FileNotFoundError when the directory is gone."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def held(path: str | os.PathLike[str], *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """take() for the block; yields whether the lock is held (False only when `blocking` is off)."""
    fd = take(path, shared=shared, blocking=blocking)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        release(fd)
