"""The web server's staging dir for transfers: `<BERTH_TRANSFER_DIR>/uploads/<uuid>.upload` (an upload waiting
for its host's worker) and `downloads/<job id>` (the file an export/save/logs job pushed).

Nothing may be left behind when a process dies mid-write, so a file is written anonymously (O_TMPFILE: it has
no name until complete; the kernel frees it if the writer dies) and given its name only once whole. A named
file stays flock()ed by the process that made it until the database says who owns it (the Transfer row or
the job); `sweep` deletes a file nobody holds and nobody owns, so a web server killed between naming a file
and committing its row leaves nothing after the next sweep. Django-free apart from settings."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings

from workers.engine import flocks

CHUNK = 1 << 20


def transfer_dir() -> Path:
    return Path(settings.BERTH_TRANSFER_DIR)


def _subdir(name: str) -> Path:
    path = transfer_dir() / name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def uploads_dir() -> Path:
    return _subdir("uploads")


def downloads_dir() -> Path:
    return _subdir("downloads")


class Staging:
    """A file being written in `directory`: nameless (O_TMPFILE) until `publish`, locked until `release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.size = 0
        self.path: Path | None = None
        self._temp_name: Path | None = None
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:  # a file system without O_TMPFILE: a hidden name, swept once unlocked
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            self._temp_name = directory / f".{uuid.uuid4().hex}.partial"
            self.fd = os.open(self._temp_name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.write(self.fd, view)
            view = view[done:]
        self.size += len(data)

    def copy_from(self, chunks: Iterable[bytes], limit: int | None = None, too_big: Callable[[], Exception] | None = None) -> int:
        for chunk in chunks:
            if limit is not None and self.size + len(chunk) > limit:
                raise too_big() if too_big else ValueError(f"more than {limit} bytes")
            self.write(chunk)
        return self.size

    def publish(self, path: Path) -> Path:
        """Give the complete file its name `path` (replacing an older file of that name); still locked."""
        os.fsync(self.fd)
        if self._temp_name is None:
            hidden = self.directory / f".{uuid.uuid4().hex}.link"
            _link_fd(self.fd, hidden)
            self._temp_name = hidden
        os.rename(self._temp_name, path)
        self._temp_name = None
        self.path = path
        return path

    def release(self) -> None:
        """Close the file (dropping the lock); an unpublished one is deleted (anonymous: by the kernel)."""
        if self._temp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp_name)
            self._temp_name = None
        if self.fd >= 0:
            flocks.release(self.fd)  # LOCK_UN first: a child forked meanwhile must not keep the lock
            self.fd = -1

    def discard(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.release()


def _link_fd(fd: int, path: Path) -> None:
    """Give the anonymous file `fd` the name `path`: linkat(2) following /proc/self/fd/<fd> (os.link does
    not follow that magic link here, and AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, at_symlink_follow = -100, 0x400
    if libc.linkat(at_fdcwd, f"/proc/self/fd/{fd}".encode(), at_fdcwd, os.fsencode(path), at_symlink_follow) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))


_held: dict[str, Staging] = {}


def hold(staging: Staging) -> None:
    """Keep `staging` locked after its writer returns (until `release_path`): the request that staged an
    upload holds it until the service has committed the row that owns it, or deleted it."""
    assert staging.path is not None
    _held[str(staging.path)] = staging


def release_path(path: str | os.PathLike[str]) -> None:
    staging = _held.pop(str(path), None)
    if staging is not None:
        staging.release()


def is_locked(path: Path) -> bool:
    """True while a live process holds the file's lock (a writer or a request that staged it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            return True
        raise
    flocks.release(fd)
    return False


def sweep(owned: Callable[[str, Path], bool]) -> list[Path]:
    """Delete every staged file no live process holds and `owned(kind, path)` disowns ("uploads" or
    "downloads"); hidden temp names of dead writers always go. Returns what was deleted."""
    removed = []
    for kind in ("uploads", "downloads"):
        directory = transfer_dir() / kind
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if is_locked(path):
                continue
            if path.name.startswith(".") or not path.is_file() or path.is_symlink() or not owned(kind, path):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    path.unlink()
                    removed.append(path)
    return removed
