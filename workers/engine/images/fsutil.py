"""Crash-safe file writes and hashing streams shared by the image store."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


_SYNC_FILE_RANGE_WRITE = 2
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


class Writeback:
    """Writes to a file whose new pages the kernel is told to start writing to disk every EVERY bytes, without
    waiting for them: the fsync or syncfs that makes the file durable later finds little left to write. A move's
    receive waited 0.25-0.44 s in its layer's commit for 250 MB written just before (bench/move.py). `f` is a
    file object (flushed before each start) or a descriptor; a kernel that refuses, or a file object with no
    descriptor, only writes later."""

    EVERY = 8 << 20

    def __init__(self, f: BinaryIO | int) -> None:
        self.f = f
        try:
            self.fd: int | None = f if isinstance(f, int) else f.fileno()
        except (OSError, ValueError):  # not a file of the system (io.BytesIO): nothing to start
            self.fd = None
        self.written = self.started = 0

    def write(self, data: bytes) -> None:
        if isinstance(self.f, int):
            write_all(self.fd, data)
        else:
            self.f.write(data)
        self.written += len(data)
        if self.fd is not None and self.written - self.started >= self.EVERY:
            if not isinstance(self.f, int):
                self.f.flush()
            _libc.sync_file_range(self.fd, self.started, self.written - self.started, _SYNC_FILE_RANGE_WRITE)
            self.started = self.written


def read_full(raw: BinaryIO, n: int) -> bytes:
    """n bytes of `raw`, read as many times as it takes; fewer only where the stream ends. One read that gives them
    all is returned as it is; pieces are joined once (not grown a read at a time)."""
    first = raw.read(n)
    if len(first) == n or not first:
        return first
    pieces, got = [first], len(first)
    while got < n:
        more = raw.read(n - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def fsync_path(path: str | os.PathLike[str], flags: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fsync_path(path, os.O_DIRECTORY)


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush the whole filesystem holding `path`: cheaper than fsyncing each file of an unpacked layer."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def flush_tree(root: str | os.PathLike[str], written: list[str] | None) -> None:
    """Make what an extraction wrote under `root` durable: `written` (tarsafe.ExtractStats.written, relative to
    `root`) fsynced one by one, or one syncfs of the filesystem when there were too many to list (None). A syncfs
    also waits for everything else dirty on that filesystem, others' writes: a move's target waited 0.12-0.15 s
    in its layer's commit for the 200 MB relay file of a control plane on the same disk (bench/move.py). An fsync
    each costs about 0.15 ms a file here, so a tree of many files still takes the syncfs."""
    if written is None:
        syncfs(root)
        return
    for rel in written:
        fsync_path(os.path.join(root, rel) if rel else root, os.O_NOFOLLOW)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it over `path`, fsync the directory."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n")


def canonical_json(obj: Any) -> bytes:
    """The bytes of a manifest or config blob: stable key order, no spaces, so digests are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


class HashingReader:
    """A read-only stream that hashes and counts what passes through it (optionally teeing it to a file)."""

    def __init__(self, raw: BinaryIO, tee: BinaryIO | None = None, progress=None, total: int | None = None,
                 hashing: bool = True, behind: bool = False):
        self.raw = raw
        self.hash = hashlib.sha256() if hashing else None
        self.count = 0
        self.eof = False
        self._progress = progress
        self._total = total
        self._tee = Writeback(tee) if tee is not None else None
        # behind: the hash and the tee in a thread of their own, while the caller goes on with what it read
        self._behind = (_Behind(self.hash, self._tee) if behind and (self.hash is not None or tee is not None)
                        else None)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else CHUNK * 64)
        if not data:
            if n != 0:
                self.eof = True
            return b""
        if self._behind is not None:
            self._behind.put(data)
        else:
            if self.hash is not None:
                self.hash.update(data)
            if self._tee is not None:
                self._tee.write(data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(self.count, self._total)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
        self.finish()

    def finish(self) -> None:
        """Wait until the hash and the tee have everything read so far (with `behind`); raise what failed there."""
        if self._behind is not None:
            self._behind.close()

    def abandon(self) -> None:
        """Stop the `behind` thread without raising (the caller is failing already)."""
        if self._behind is not None:
            self._behind.close(quiet=True)

    @property
    def digest(self) -> str:
        self.finish()
        return "sha256:" + self.hash.hexdigest()


class _Behind:
    """HashingReader's hash and tee in a thread: hashlib and file writes release the GIL on large buffers, so a
    reader that also unpacks what it reads (a layer, streamed in while the blob is kept) uses a second CPU.
    Bounded: at most BEHIND chunks wait."""

    BEHIND = 8

    def __init__(self, hash, tee: Writeback | None) -> None:
        import queue
        import threading

        self.hash, self.tee = hash, tee
        self.error: BaseException | None = None
        self.chunks: queue.Queue = queue.Queue(maxsize=self.BEHIND)
        self.thread = threading.Thread(target=self._run, name="hash-behind", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (data := self.chunks.get()) is not None:
            if self.error is not None:
                continue  # failed: only drain what is queued, so put() never blocks for good
            try:
                if self.hash is not None:
                    self.hash.update(data)
                if self.tee is not None:
                    self.tee.write(data)
            except BaseException as exc:  # noqa: BLE001 - raised in the reader's thread
                self.error = exc

    def put(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.chunks.put(data)

    def close(self, quiet: bool = False) -> None:
        if self.thread.is_alive():
            self.chunks.put(None)
            self.thread.join()
        if self.error is not None and not quiet:
            raise self.error


class HashingWriter:
    """A write-only stream that hashes and counts what it forwards."""

    def __init__(self, raw: BinaryIO, progress=None, total: int | None = None):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0
        self._progress = progress
        self._total = total

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(self.count, self._total)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()
