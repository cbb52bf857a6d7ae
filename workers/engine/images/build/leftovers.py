"""What a build whose process died leaves behind, and its removal.

A build tags its intermediate images `berth-build-<id>:sN` and runs RUN steps in containers made from them; it
removes both when it ends. A process killed mid-build (a worker's SIGKILL) cannot, so each build holds an
exclusive flock on images/builds/<id>.lock while it runs: the kernel drops the lock when the process dies, and the
next build (or the worker's start) removes the containers and tags of every build whose lock is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import flocks
from ..layout import REF_NAME

if TYPE_CHECKING:
    from ..store import ImageStore

TAG_PREFIX = "berth-build-"


def builds_dir(store: ImageStore) -> Path:
    return Path(store.dir) / "builds"


@contextlib.contextmanager
def running(store: ImageStore, build_id: str) -> Iterator[None]:
    """Marks build `build_id` as alive for the block (its lock held), and forgets it after."""
    d = builds_dir(store)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{build_id}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        flocks.release(fd)  # a sweep took the file between our open and our lock (it was free then): again
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        flocks.release(fd)


def sweep(store: ImageStore, manager: Callable[[], Any]) -> list[str]:
    """Remove the containers and intermediate tags of every dead build (a lock file whose lock nobody holds);
    returns what went (container ids, tags). Each dead build's lock is held while its leftovers go. `manager`
    returns the host's ContainerManager (asked for only when there is something to remove)."""
    d = builds_dir(store)
    if not d.is_dir():
        return []
    gone: list[str] = []
    for entry in sorted(d.iterdir()):
        if entry.suffix != ".lock" or entry.is_symlink():
            continue
        try:
            fd = os.open(entry, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # its build ended meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            gone += _remove_build(store, manager(), entry.stem)
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        finally:
            flocks.release(fd)
    return gone


def _remove_build(store: ImageStore, manager: Any, build_id: str) -> list[str]:
    prefix = f"{TAG_PREFIX}{build_id}:"
    gone: list[str] = []
    for view in manager.list(all=True):
        if str(view.get("image") or "").startswith(prefix):
            manager.remove(view["id"], force=True)
            gone.append(view["id"])
    with store._lock("index"):
        index = store._read_index()
        keep = [d for d in index["manifests"] if not d.get("annotations", {}).get(REF_NAME, "").startswith(prefix)]
        gone += [d["annotations"][REF_NAME] for d in index["manifests"] if d not in keep]
        if len(keep) != len(index["manifests"]):
            index["manifests"] = keep
            store._write_index(index)
    return gone
