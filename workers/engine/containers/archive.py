"""`cp` in and out of a running container as tar streams, never leaving the container's root.

The container's root is reached through /proc/<init>/root (its own mount tree, volumes included). A path is
looked up with openat2(RESOLVE_IN_ROOT): symlinks, absolute or with `..`, resolve as the container itself
would see them, never above its root (a naive open of "/proc/<pid>/root/<path>" would follow an absolute
symlink planted by the container out to the host's files). Below the looked-up directory every step is an
openat with O_NOFOLLOW relative to its parent's descriptor, so an entry the container swaps for a symlink
meanwhile fails (ELOOP) instead of being followed.

Out: the entry and, for a directory, its tree (not descending into other file systems: /proc, /sys, ...) as
tar, written by the image store's TarWriter. In: the archive is first extracted by tarsafe into an empty
staging directory of ours (links that escape, devices, setuid bits refused or stripped), then copied into
the destination directory with descriptor-relative calls, replacing what is there (a directory is never
replaced by a file)."""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from workers.engine.confined import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    _openat2_works,
    _walk_nofollow,
    openat2,
    resolve_in_root,
)
from workers.engine.images.errors import ImageError
from workers.engine.images.merged import Node
from workers.engine.images.tarsafe import TarPolicy, extract
from workers.engine.images.tarwrite import TarWriter

from .errors import ContainerError, InvalidConfig

CP_POLICY = TarPolicy(allow_devices=False, setuid="strip", whiteouts=False)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NoSuchPath(ContainerError):
    code = "not_found"
    field = "path"


def open_root(pid: int) -> int:
    """The container's root directory (of its own mount namespace) as a descriptor."""
    return os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in_root(rootfd: int, path: str, flags: int) -> int:
    """Open `path` as the container sees it (symlinks followed inside `rootfd` only)."""
    if _openat2_works():
        return openat2(rootfd, path or "/", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    return _walk_nofollow(rootfd, resolve_in_root(rootfd, path), flags, 0)


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise InvalidConfig("path", f"path {path!r} must be an absolute path in the container")
    return path


def _lookup_error(e: OSError, path: str) -> ContainerError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return NoSuchPath(f"no such file or directory in the container: {path}")
    if e.errno in (errno.ELOOP, errno.EXDEV):
        return InvalidConfig("path", f"{path}: too many symlinks, or a link changed while it was looked up")
    return ContainerError(f"{path}: {e.strerror or e}")


def stat_path(rootfd: int, path: str) -> dict:
    """What `path` is (the last component not followed, as `docker cp` does): name, type, size, mode, mtime."""
    parent, name = _split(_check_path(path))
    try:
        pfd = open_in_root(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False) if name else os.fstat(pfd)
            target = os.readlink(name, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
        finally:
            os.close(pfd)
    except OSError as e:
        raise _lookup_error(e, path) from None
    return {"name": name or "/", "type": _kind(st.st_mode), "size": st.st_size, "mode": stat.S_IMODE(st.st_mode),
            "mtime": int(st.st_mtime), "link_target": target}


def list_dir(rootfd: int, path: str) -> list[dict]:
    """The entries of directory `path` (resolved in the container), sorted by name, for a file browser."""
    try:
        dfd = open_in_root(rootfd, _check_path(path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise _lookup_error(e, path) from None
    try:
        out = []
        with os.scandir(dfd) as it:
            names = sorted(e.name for e in it)
        for name in names:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append({"name": name, "type": _kind(st.st_mode), "size": st.st_size,
                        "mode": stat.S_IMODE(st.st_mode), "mtime": int(st.st_mtime)})
        return out
    finally:
        os.close(dfd)


def get_archive(rootfd: int, path: str, out: BinaryIO) -> int:
    """`path` (and its tree) as a tar stream on `out`, named by its last component; bytes written."""
    parent, name = _split(_check_path(path))
    try:
        pfd = open_in_root(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise _lookup_error(e, path) from None
    try:
        try:
            top = os.stat(name or ".", dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise _lookup_error(e, path) from None
        base = name or "."
        writer = TarWriter(out)
        writer.add(base, Node(pfd, name or ".", top))
        if stat.S_ISDIR(top.st_mode):
            try:
                dfd = os.open(name or ".", _DIR, dir_fd=pfd)
            except OSError as e:
                raise _lookup_error(e, path) from None
            try:
                for rel, node in _walk(dfd, top.st_dev, ""):
                    writer.add(f"{base}/{rel}", node)
            finally:
                os.close(dfd)
        writer.close()
        return writer.written
    finally:
        os.close(pfd)


def put_archive(rootfd: int, path: str, stream: BinaryIO, staging: str) -> int:
    """Extract the tar `stream` into the existing directory `path` of the container; entries copied."""
    try:
        dfd = open_in_root(rootfd, _check_path(path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            raise InvalidConfig("path", f"{path} is not a directory in the container") from None
        raise _lookup_error(e, path) from None
    os.makedirs(staging, exist_ok=True)
    stage = tempfile.mkdtemp(prefix="cp-", dir=staging)
    try:
        try:
            extract(stream, stage, CP_POLICY, what="upload")
        except ImageError as e:
            raise InvalidConfig("archive", str(e)) from None
        sfd = os.open(stage, _DIR)
        try:
            return _copy_tree(sfd, dfd, path)
        finally:
            os.close(sfd)
    finally:
        os.close(dfd)
        shutil.rmtree(stage, ignore_errors=True)


# ---- helpers ---------------------------------------------------------------------------------------------------


def _split(path: str) -> tuple[str, str]:
    norm = posixpath.normpath(path)
    if norm in ("/", "//"):
        return "/", ""
    parent, name = posixpath.split(norm)
    return parent or "/", name


def _kind(mode: int) -> str:
    return ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode)
            else "other")


def _walk(dirfd: int, dev: int, rel: str) -> Iterator[tuple[str, Node]]:
    """Entries below `dirfd`, parents first, sorted; never following a link, staying on device `dev`."""
    with os.scandir(dirfd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        r = f"{rel}/{name}" if rel else name
        yield r, Node(dirfd, name, st)
        if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
            try:
                sub = os.open(name, _DIR, dir_fd=dirfd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                    continue  # swapped or removed meanwhile: not followed
                raise
            try:
                yield from _walk(sub, dev, r)
            finally:
                os.close(sub)


def _make_room(dfd: int, name: str, where: str) -> None:
    """Remove a non-directory `name` so a new entry can take its place (a symlink is removed, not followed)."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InvalidConfig("path", f"cannot overwrite the directory {where}/{name} with a non-directory")
    os.unlink(name, dir_fd=dfd)


def _copy_tree(src: int, dst: int, where: str) -> int:
    n = 0
    with os.scandir(src) as it:
        names = sorted(e.name for e in it)
    for name in names:
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        n += 1
        if stat.S_ISDIR(st.st_mode):
            try:
                os.mkdir(name, 0o700, dir_fd=dst)
            except FileExistsError:
                cur = os.stat(name, dir_fd=dst, follow_symlinks=False)
                if not stat.S_ISDIR(cur.st_mode):
                    os.unlink(name, dir_fd=dst)
                    os.mkdir(name, 0o700, dir_fd=dst)
            s_sub = os.open(name, _DIR, dir_fd=src)
            try:
                d_sub = os.open(name, _DIR, dir_fd=dst)  # a symlink swapped in meanwhile: ELOOP, not followed
                try:
                    n += _copy_tree(s_sub, d_sub, f"{where}/{name}")
                    _meta(d_sub, st)
                finally:
                    os.close(d_sub)
            finally:
                os.close(s_sub)
        elif stat.S_ISREG(st.st_mode):
            _make_room(dst, name, where)
            ifd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                ofd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=dst)
                try:
                    left = st.st_size
                    while left > 0:
                        done = os.sendfile(ofd, ifd, None, min(left, 1 << 24))
                        if done == 0:
                            break
                        left -= done
                    _meta(ofd, st)
                finally:
                    os.close(ofd)
            finally:
                os.close(ifd)
        elif stat.S_ISLNK(st.st_mode):
            _make_room(dst, name, where)
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode):
            _make_room(dst, name, where)
            os.mkfifo(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
    return n


def _meta(fd: int, st: os.stat_result) -> None:
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
