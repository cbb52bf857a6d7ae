"""Berth's runtime verbs run in a fork of the monitor rather than by its command line.

The monitor has the runtime imported already, so a fork costs no interpreter start: the command line
(`python -m workers.engine.runtime create|start|exec`) cost most of a container's start, twice per start.
A forked child behaves as the command line would towards the monitor: its stdio are the ones given, it
exits 0 when the verb is done, else it writes one error line in runc's format on its stderr and exits 1;
the monitor reaps it as it reaps a spawned command.

What the child must not take from the monitor, since the container's init is forked from it and lives
on until `start`: the monitor's file descriptors (its socket, its clients, other containers' pipes, the
flock on monitor.pid, whose holder would keep the next monitor from starting), its signal handlers and
mask, its wake-up fd. It keeps none of them.

A gate orders the child after the monitor's record of it: the child waits until the monitor has written
its pid down. If the monitor dies first (the gate's pipe reads as closed), the child runs its verb only
if the record names it, else it does nothing. So what a successor monitor reads in the record is what
happens, and it never has to guess which of its holder's children ran a verb for which container (the
command line's argv said so; a fork's is the monitor's own).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable

# exit code of a child whose monitor died before releasing it: it did nothing
NOT_RELEASED = 125

# the verbs' modules the runtime imports lazily: imported once in the monitor, not in every child
_PRELOAD = ("workers.engine.runtime.create", "workers.engine.runtime.init", "workers.engine.runtime.cgroups",
            "workers.engine.runtime.cgroups.v1", "workers.engine.runtime.cgroups.v2",
            "workers.engine.runtime.seccomp_filter", "workers.engine.runtime.exec_", "workers.engine.runtime.cli")


def preload() -> None:
    """Import what a forked verb needs, in the monitor (once), so that no child imports anything; and read
    the cgroup hierarchies once, so that no child parses the host's whole mount table again."""
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    from workers.engine.runtime.cgroups.hierarchy import keep_hierarchies

    keep_hierarchies()


def _become_child(stdio: tuple[int, int, int], keep: int) -> int:
    """Shed what the monitor holds; `keep` survives (its fd number is returned: it may have moved)."""
    gc.disable()  # a finaliser of the monitor's garbage could close an fd the verb opened since
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    # as the command line's interpreter has it: a write to a closed pipe (a hook that exits without reading
    # the state it was given) is an EPIPE error, not the death of the create; the container's process gets
    # every signal back to its default before its exec (runtime/process.py reset_signals)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    tmp = [os.dup(fd) for fd in stdio]  # through fresh fds, so that e.g. (1, 0, 2) lands right
    if keep in (0, 1, 2):
        keep = os.dup(keep)
    for target, fd in enumerate(tmp):
        os.dup2(fd, target, inheritable=True)
    from workers.engine.runtime.process import close_fds

    close_fds(3, (keep,))
    return keep


def _name(comm: str) -> None:
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(comm[:15])
    except OSError:
        pass


def fork_verb(verb: Callable[[], object], stdio: tuple[int, int, int], comm: str,
              written_down: Callable[[int], bool] | None = None) -> tuple[int, int]:
    """Fork a child that runs `verb()` once released; (its pid, the gate's fd). The caller writes the pid
    down, then calls `release(gate)`. A gate closed unreleased (the caller died) makes the child exit
    NOT_RELEASED, unless `written_down(its pid)` says the caller's record names it."""
    for stream in (sys.stdout, sys.stderr):  # text the monitor buffered must not reach the child's stdio
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass  # none, or closed
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid:
        os.close(gate_r)
        return pid, gate_w
    code = 1
    try:
        gate_r = _become_child(stdio, gate_r)
        if os.read(gate_r, 1) != b"1" and not (written_down is not None and written_down(os.getpid())):
            os._exit(NOT_RELEASED)
        os.close(gate_r)
        _name(comm)  # after the gate: a process named so has been written down by its monitor
        verb()
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the monitor on stderr, as the command line would
        try:
            from workers.engine.runtime.cli import error_line, error_message

            os.write(2, error_line(error_message(exc)).encode())
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code)


def release(gate: int) -> None:
    """Let the child of `fork_verb` run its verb."""
    try:
        os.write(gate, b"1")
    finally:
        os.close(gate)
