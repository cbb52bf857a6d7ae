"""`os.fork()` with the child born in a cgroup2 directory: clone3(CLONE_INTO_CGROUP), as crun does.

Moving a process into a cgroup afterwards (a write of its pid to cgroup.procs) takes the kernel's
threadgroup lock for writing, which waits for an RCU grace period: 5-11 ms on this machine, the largest
single cost of a container's create. A child born in its cgroup migrates nothing. On cgroup v1
hierarchies a process that writes "0" (itself, one thread) to `tasks` takes no such lock either
(`join_v1_self`), so a container's init joins those itself.

Python has no clone3, so the call goes through libc's syscall() with the interpreter's own fork hooks
around it, as os.fork() has them (PyOS_BeforeFork / PyOS_AfterFork_Child / PyOS_AfterFork_Parent), and
with the GIL held throughout. Only for a single-threaded caller (the runtime's intermediate process):
libc's own fork steps that a raw clone skips (its atfork handlers, the reset of locks other threads may
hold) matter only when there are other threads.
"""

from __future__ import annotations

import _signal as signal  # its numbers without the enum import of `signal` (see jsonfast)
import ctypes
import os

from .cgroups.files import write

SYS_CLONE3 = 435  # the same on every architecture (syscalls added after 5.0 are numbered alike)
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls", "set_tid",
        "set_tid_size", "cgroup")]


_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held across the call
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t)
_api = ctypes.pythonapi


def fork_into_cgroup(cgroup_fd: int) -> int:
    """Fork; the child starts as a member of the cgroup2 directory open as `cgroup_fd`. 0 in the child, the
    child's pid in the parent; OSError (nothing forked) when the kernel refuses, e.g. ENOSYS before 5.7."""
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd)
    _api.PyOS_BeforeFork()
    pid = _syscall(SYS_CLONE3, ctypes.addressof(args), ctypes.sizeof(args))
    if pid == 0:
        _api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    _api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3 into a cgroup: {os.strerror(err)}")
    return pid


def join_v1_self(dirs: list[str]) -> None:
    """This process (one thread) into each cgroup v1 directory, by writing "0" to its `tasks`: no
    threadgroup lock, so no grace period (see the module docstring)."""
    for d in dirs:
        write(os.path.join(d, "tasks"), 0)
