"""Docker's --sig-proxy for a foreground `run` / `start --attach`: signals this process receives are sent to
the container's init through the manager's kill, and the caller keeps streaming until the container ends."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator

from ..containers import ContainerError, ContainerManager

# Docker forwards every catchable signal; these are the ones a user sends a foreground CLI (Ctrl-C, Ctrl-\,
# a closed terminal, `kill`, reload and log-rotate conventions). SIGWINCH and SIGCHLD stay ours.
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def parse_bool(text: str) -> bool:
    """--sig-proxy=false / true (Docker's spelling; also 0/1, no/yes)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(text)


@contextlib.contextmanager
def forwarding(make_manager: Callable[[], ContainerManager], ref: str) -> Iterator[None]:
    """While inside, the PROXIED signals go to container `ref` instead of acting on this process.

    The handler only queues the number: a kill takes the container's flock, and the interrupted main thread
    may hold that same lock (a log follow refreshes the record under it), so the kill is made by a thread
    with a manager of its own, which waits for the main thread's lock like any other process would."""
    pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # put() is safe in a signal handler

    def handler(signum: int, _frame) -> None:
        pending.put(signum)

    def forward() -> None:
        m = make_manager()
        while (signum := pending.get()) is not None:
            with contextlib.suppress(ContainerError):  # it ended meanwhile: its exit code tells the rest
                m.kill(ref, signum)

    thread = threading.Thread(target=forward, name="berth-sig-proxy", daemon=True)
    thread.start()
    previous = {s: signal.signal(s, handler) for s in PROXIED}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        pending.put(None)
        thread.join(timeout=30)  # a kill in flight finishes; a stuck one must not keep us from exiting
