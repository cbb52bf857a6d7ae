"""Layer dirs unpacked from blobs already verified in the store, once, whoever needs them first.

A pull ends when every blob is verified and in the OCI layout; its layers unpack in the background, in threads
of the pulling process (`Background`), each started as soon as its blob is in. A container's first use, a
build's FROM or a move (`ensure`) waits for them, or unpacks what nobody is unpacking. One lock file per layer
(`images/locks/<diff id>.lock`, flock) says who is at it: the kernel drops it when its holder dies, so a
crash never leaves a waiter stuck. The unpack goes to images/tmp and is renamed in whole after its diff id
and the tar rules are checked (LayersMixin._stage_layer, _commit), so a layer cut short by a crash is never
used: its dir is missing and the next one who needs it unpacks it again (gc removes the leftover).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import flocks
from .fsutil import syncfs
from .layers import _Txn

if TYPE_CHECKING:
    from .store import ImageStore

log = logging.getLogger(__name__)
# Layers unpacked at once: inflating, hashing and writing release the GIL, so threads use every core.
WORKERS = max(2, min(4, os.cpu_count() or 2))
Progress = Callable[[dict[str, Any]], None]
_running: set[Background] = set()  # those still holding the gc lock, for wait_all
_running_mu = threading.Lock()


def lock_path(store: ImageStore, diff_id: str) -> str:
    return str(store.locks / (diff_id.split(":", 1)[1] + ".lock"))


def lock_layer(store: ImageStore, diff_id: str, *, wait: bool) -> int | None:
    """The layer's lock, held by the returned fd; None if someone holds it and `wait` is False."""
    return flocks.take(lock_path(store, diff_id), blocking=wait)


def stage(store: ImageStore, diff_id: str, blob: dict[str, Any], progress: Progress | None = None) -> _Txn | None:
    """Unpack the layer from its blob into images/tmp, its diff id checked, unless its dir is there (None). The
    caller holds the layer's lock and the gc lock (shared), and renames it in with `commit`."""
    if store.layer_dir(diff_id).exists():
        return None
    what = blob["digest"]
    shown = None
    if progress is not None:
        def shown(n: int, total: int | None) -> None:
            progress({"status": "extracting", "id": what, "current": n, "total": total})
    txn = _Txn()
    try:
        with open(store.blob_path(what), "rb") as f:
            txn.layers.append(store._stage_layer(f, what=what, expect_diff_id=diff_id, keep_blob=False,
                                                 verified_digest=what, progress=shown, total=blob.get("size")))
    except BaseException:
        store._discard(txn)
        raise
    return txn


def commit(store: ImageStore, txns: list[_Txn]) -> None:
    """Rename staged layers in: one flush of the filesystem for them all, before the index lock (a flush may
    take long; other writers need not wait for it). Whatever is not renamed in is removed."""
    try:
        if txns:
            syncfs(store.tmp)
            with store._lock("index"):
                for txn in txns:
                    txn.synced = True
                    store._commit(txn)
    finally:
        for txn in txns:
            store._discard(txn)


def ensure(store: ImageStore, layers: list[tuple[str, dict[str, Any]]], workers: int = WORKERS) -> None:
    """Every layer dir of `layers` is there on return: each missing one is waited for (its lock) and unpacked
    here if nobody made it meanwhile; several at once, renamed in together. The caller should hold the gc lock
    (shared), so that gc cannot take a blob away meanwhile. The first failure is raised, after every layer has
    been tried (the others are renamed in)."""
    missing = list({d: b for d, b in layers if not store.layer_dir(d).exists()}.items())
    if not missing:
        return
    held: list[int] = []
    staged: list[_Txn] = []

    def one(item: tuple[str, dict[str, Any]]) -> None:
        diff_id, blob = item
        held.append(lock_layer(store, diff_id, wait=True))
        txn = stage(store, diff_id, blob)
        if txn is not None:
            staged.append(txn)

    try:
        if len(missing) == 1:
            one(missing[0])
            errors = []
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(missing)),
                                    thread_name_prefix="berth-unpack") as pool:
                futures = [pool.submit(one, item) for item in missing]
            errors = [f.exception() for f in futures if f.exception() is not None]
        commit(store, staged)
    finally:
        for fd in held:
            flocks.release(fd)
    if errors:
        raise errors[0]


class Background:
    """The unpacking one pull starts: each layer given to `add` (its blob verified and in the store) unpacks in a
    thread of this process, during the pull and after it returns; they are renamed in together after one flush,
    when the last is done. Each layer's lock is taken in `add`, before the image can be tagged, and held until
    then, so a first use always finds it held and waits; the gc lock (shared) is held from the start to the end,
    so gc cannot remove what is being unpacked. Errors are logged and kept for `wait`; a first use that finds a
    layer missing unpacks it again and raises the error itself."""

    def __init__(self, store: ImageStore, workers: int = WORKERS, progress: Progress | None = None) -> None:
        self.store, self.progress = store, progress
        self.gc_fd: int | None = store._lock_fd("gc", shared=True)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="berth-unpack")
        self.futures: list[Future] = []
        self.staged: list[tuple[_Txn, int]] = []
        self._mu = threading.Lock()
        self._pending = 0
        self._closed = False
        with _running_mu:
            _running.add(self)

    def add(self, diff_id: str, blob: dict[str, Any]) -> bool:
        """Queue the layer unless its dir is there or another thread or process is unpacking it."""
        if self.store.layer_dir(diff_id).exists():
            return False
        fd = lock_layer(self.store, diff_id, wait=False)
        if fd is None:
            return False
        with self._mu:
            self._pending += 1
        try:
            self.futures.append(self.pool.submit(self._run, diff_id, blob, fd))
        except BaseException:
            flocks.release(fd)
            self._one_done()
            raise
        return True

    def _run(self, diff_id: str, blob: dict[str, Any], fd: int) -> None:
        txn = None
        try:
            txn = stage(self.store, diff_id, blob, self.progress)
        except Exception as exc:
            log.warning("unpack of layer %s (blob %s) failed: %s", diff_id, blob.get("digest"), exc)
            raise
        finally:
            if txn is None:
                flocks.release(fd)  # failed or already there: a first use need not wait for the others
            else:
                with self._mu:
                    self.staged.append((txn, fd))
            self._one_done()

    def _one_done(self) -> None:
        with self._mu:
            self._pending -= 1
            last = self._closed and self._pending == 0
        if last:
            self._finish()

    def close(self) -> None:
        """No more layers: the last one to finish renames them all in and lets the locks go (a thread of the
        pool does it, never the caller)."""
        with self._mu:
            self._closed = True
            last = self._pending == 0
        if last:
            self.futures.append(self.pool.submit(self._finish))
        self.pool.shutdown(wait=False)

    def _finish(self) -> None:
        with self._mu:
            staged, self.staged = self.staged, []
        try:
            commit(self.store, [txn for txn, _ in staged])
        except Exception as exc:
            log.warning("renaming unpacked layers into %s failed: %s", self.store.layers, exc)
            raise
        finally:
            for _, fd in staged:
                flocks.release(fd)
            with self._mu:
                fd, self.gc_fd = self.gc_fd, None
            if fd is not None:
                flocks.release(fd)
            with _running_mu:
                _running.discard(self)

    def wait(self) -> None:
        """Until every queued layer is unpacked; the first failure is raised."""
        for future in list(self.futures):
            future.result()


def wait_all() -> None:
    """Until every background unpack of this process is over, whatever its outcome (tests, before their temp
    dirs go)."""
    with _running_mu:
        running = list(_running)
    for background in running:
        for future in list(background.futures):
            future.exception()
