"""A process forked while another thread of its parent holds one of the engine's locks does not keep that lock
once the parent lets it go. Before workers/engine/flocks.py, a pool process billiard forked while the worker's
reporter thread held a container's lock kept the lock (the child shares the open file description), and the
job it then ran waited on that lock for ever (tests/e2e/test_move_deaths.py's settle hung so, 1 run in ~15).

Each case: a thread takes the lock; the process forks; the thread lets the lock go; the child then asks for the
same lock file on a descriptor of its own, without waiting, and tells whether it got it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from workers.engine.containers import ContainerManager, volumes
from workers.engine.images.store import ImageStore
from workers.engine.net.store import NetworkStore

CID = "ab" * 32


def container_lock(root: Path) -> tuple[contextlib.AbstractContextManager, Path]:
    mgr = ContainerManager(root)
    (mgr.containers_dir / CID).mkdir(parents=True)
    return mgr._lock(CID), mgr.containers_dir / CID / ".lock"


def names_lock(root: Path) -> tuple[contextlib.AbstractContextManager, Path]:
    return volumes.names_lock(root), root / "locks" / "names.lock"


def network_lock(root: Path) -> tuple[contextlib.AbstractContextManager, Path]:
    store = NetworkStore(root)
    return store.locked(), store.base / "net.lock"


def image_store_lock(root: Path) -> tuple[contextlib.AbstractContextManager, Path]:
    store = ImageStore(root)
    return store._lock("gc"), store.dir / "gc.lock"


@pytest.mark.parametrize("taker", [container_lock, names_lock, network_lock, image_store_lock])
def test_a_child_forked_while_a_thread_holds_a_lock_does_not_keep_it(
        tmp_path: Path, taker: Callable[[Path], tuple[contextlib.AbstractContextManager, Path]]) -> None:
    lock, path = taker(tmp_path)
    held, forked = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            forked.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    released_r, released_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: once the parent's thread has let go, is the lock free?
        code = 2
        try:
            os.close(released_w)
            os.read(released_r, 1)
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                code = 0
            except BlockingIOError:
                code = 1
        finally:
            os._exit(code)
    os.close(released_r)
    forked.set()
    thread.join(10)
    os.write(released_w, b"x")
    os.close(released_w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child still held the lock its parent let go"
