"""Minimal container init for hosts without catatonit: pid 1 forks the real process,
forwards the signals it gets to it, reaps every orphan, and exits with its status."""

from __future__ import annotations

import os
import signal

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH, signal.SIGCONT)


def fork_and_reap() -> None:
    """Return in the child (which goes on to exec); the parent never returns."""
    pid = os.fork()
    if pid == 0:
        return
    for s in FORWARDED:
        signal.signal(s, lambda signum, _f: _forward(pid, signum))
    while True:
        try:
            got, status = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)
        if got == pid:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            os._exit(code)


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
