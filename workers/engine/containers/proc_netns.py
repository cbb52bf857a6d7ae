"""The network namespace of a running container, opened on the host through one of its processes.

Once a container has started, its namespace's bind mount leaves the host's mount table (net/manager.py
`started`): every mount on the host is copied into each new container's mount namespace, so a thousand of them
slowed every later start. The container's processes hold the namespace. A connect, a disconnect, or a container
that joins it needs it at its path again, and the network manager mounts it back from the fd opened here.

A pid is only a number, and a container's processes are its tenant's: the process is checked to be in the
container's cgroup, and to be the same process from that check to the open (its pidfd has not signalled an exit,
so the pid was not reused meanwhile). The network manager then checks the namespace itself against the identity
it kept at the start, so a process of the container that moved to a namespace of its own is refused too."""

from __future__ import annotations

import os
import select
from pathlib import Path


def in_cgroup(pid: int, cgroup: str) -> bool:
    """Whether process `pid` is in `cgroup` (or below it) in any hierarchy, as /proc/<pid>/cgroup says."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        path = line.split(":", 2)[-1]
        if path == cgroup or path.startswith(cgroup + "/"):
            return True
    return False


def open_netns(pid: int, cgroup: str) -> int | None:
    """An fd (O_CLOEXEC, the caller closes it) of the network namespace of process `pid` if it is a process of
    `cgroup` and stays alive until the namespace is open; None otherwise."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if not in_cgroup(pid, cgroup):
            return None
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        if select.select([pidfd], [], [], 0)[0]:  # it ended: the fd may be of a process that took its pid
            os.close(fd)
            return None
        return fd
    finally:
        os.close(pidfd)
