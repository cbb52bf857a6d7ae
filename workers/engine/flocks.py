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


def release(fd: int) -> None:
    """Unlock, then close: the lock goes now, whatever copies of `fd` forked children hold."""
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
