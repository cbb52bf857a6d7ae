"""Streaming tar output: a tree, the merged view of overlay layers (export) and an upper dir (commit).

Headers come from tarfile; file data is copied in 1 MiB chunks straight to the output, so memory stays
flat whatever the size of the tree.

The trees are a container's (changing while it runs) or an image's (from a hostile archive): every entry is
reached through its directory's descriptor and opened with O_NOFOLLOW (see merged.py), the header is made from
what the opened file is (fstat), and a name swapped for a symlink meanwhile is copied as the symlink it now is
or skipped, never followed to a host file. The walk and the writer look at a swapping name at different moments,
so the writer keeps the stream consistent itself: nothing goes out below a name it wrote as something other
than a directory (else a link written as `d` could be followed by `d/x`, which every safe extractor, ours
included, refuses). Parents it never wrote are the layers' below, as in any diff.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from workers.engine.confined import fd_path

from .fsutil import CHUNK
from .merged import Node, close_all, is_opaque_at, is_whiteout, open_layer_dirs, open_subdirs, walk
from .tarsafe import OPAQUE_MARKER, WHITEOUT_PREFIX

_XATTRS_OUT = ("user.", "security.capability")
ZERO_BLOCK = b"\0" * tarfile.BLOCKSIZE


class TarWriter:
    """Write tar entries for paths on disk; hard links (same inode twice) become link entries."""

    def __init__(self, out: BinaryIO, mtime: int | None = None, progress=None):
        self.out = out
        self.mtime = mtime  # fixed mtime for reproducible layers (base images)
        self.written = 0
        self._progress = progress
        self._inodes: dict[tuple[int, int], str] = {}
        self._not_dirs: set[str] = set()  # walked as directories, written as something else or not at all
        try:  # a real file or pipe: file data goes kernel to kernel with sendfile
            self._fd: int | None = out.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self._advance(len(data))

    def _advance(self, n: int) -> None:
        self.written += n
        if self._progress is not None:
            self._progress(self.written, None)

    def _header(self, info: tarfile.TarInfo) -> None:
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _info(self, rel: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = self.mtime if self.mtime is not None else int(st.st_mtime)
        return info

    def _under_a_non_dir(self, rel: str) -> bool:
        parent = rel.rpartition("/")[0]
        while parent:
            if parent in self._not_dirs:
                return True
            parent = parent.rpartition("/")[0]
        return False

    def add(self, rel: str, node: Node) -> str | None:
        """The entry `node` as `rel`; returns the tar type written, None when it was left out. A regular file or
        directory is opened first (O_NOFOLLOW, relative to its directory) and described by what was opened;
        anything else is described by its lstat. Left out: what changed twice meanwhile, and anything whose
        parent was written as something else than a directory (swapped between the walk's look and ours)."""
        if self._under_a_non_dir(rel):
            return None
        fd = None
        st = node.st
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(node.name, flags, dir_fd=node.dirfd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.ENXIO):
                    raise
                # Swapped or removed since it was listed: describe what is there now, without following it.
                try:
                    st = os.stat(node.name, dir_fd=node.dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    return None
                if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                    return None  # changed twice: leave it out rather than chase it
            else:
                st = os.fstat(fd)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    os.close(fd)
                    return None
        try:
            kind = self._add(rel, node, st, fd)
        finally:
            if fd is not None:
                os.close(fd)
        if kind != tarfile.DIRTYPE and stat.S_ISDIR(node.st.st_mode):
            self._not_dirs.add(rel)  # the walk saw a directory and may descend: what it finds there stays out
        return kind

    def _add(self, rel: str, node: Node, st: os.stat_result, fd: int | None) -> str | None:
        info = self._info(rel, st)
        mode = st.st_mode
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._inodes.get(key)
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                self._header(info)
                return info.type
            self._inodes[key] = rel
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink(node.name, dir_fd=node.dirfd)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINVAL):
                    return None  # no longer a symlink: swapped while we read it, left out
                raise
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return None  # sockets and the like have no tar form
        xattrs = self._xattrs(fd_path(fd) if fd is not None else fd_path(node.dirfd, node.name))
        if xattrs:
            info.pax_headers = xattrs
        self._header(info)
        if info.type == tarfile.REGTYPE and info.size:
            self._copy(fd, info.size)
        return info.type

    def _xattrs(self, path: str) -> dict[str, str]:
        # `path` names a descriptor we hold or an entry of one; l*xattr does not follow its last component.
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return {}
        out = {}
        for name in names:
            if name.startswith(_XATTRS_OUT):
                try:
                    value = os.getxattr(path, name, follow_symlinks=False)
                except OSError:
                    continue
                out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        return out

    def _copy(self, fd: int, size: int) -> None:
        # The size is already in the header: a file that shrinks meanwhile is padded, one that grows is cut.
        remaining = size
        with open(os.dup(fd), "rb", buffering=0) as f:
            if self._fd is not None:
                self.out.flush()
                offset = 0
                while remaining > 0:
                    try:
                        n = os.sendfile(self._fd, f.fileno(), offset, min(remaining, 1 << 30))
                    except OSError as e:
                        if e.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
                            raise
                        self._fd = None  # this output takes no sendfile: copy through Python from now on
                        break
                    if n == 0:
                        break
                    offset += n
                    remaining -= n
                    self._advance(n)
                f.seek(offset)
            while remaining > 0:
                chunk = f.read(min(CHUNK, remaining))
                if not chunk:
                    break
                self._write(chunk)
                remaining -= len(chunk)
        while remaining > 0:
            n = min(CHUNK, remaining)
            self._write(b"\0" * n)
            remaining -= n
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._write(b"\0" * pad)

    def add_empty_file(self, rel: str, mtime: int | None = None) -> None:
        if self._under_a_non_dir(rel):
            return
        info = tarfile.TarInfo(rel)
        info.mode = 0o644
        info.mtime = self.mtime if self.mtime is not None else (mtime or 0)
        self._header(info)

    def close(self) -> None:
        self._write(ZERO_BLOCK * 2)
        self.out.flush()


def walk_tree(root: str) -> Iterator[tuple[str, Node]]:
    """(relative path, entry) of everything under `root`, parents first, sorted; `root` itself is trusted."""
    fds = open_layer_dirs([root])
    try:
        if fds:
            yield from _walk_plain(fds[0], "")
    finally:
        close_all(fds)


def walk_merged(layers: list[str]) -> Iterator[tuple[str, Node]]:
    """The overlayfs merged view of `layers` (topmost first), honouring whiteouts and opaque directories."""
    fds = open_layer_dirs(layers)
    try:
        yield from walk(fds)
    finally:
        close_all(fds)


def write_tree(root: str, writer: TarWriter) -> None:
    for rel, node in walk_tree(root):
        writer.add(rel, node)


def write_merged(layers: list[str], writer: TarWriter) -> None:
    for rel, node in walk_merged(layers):
        writer.add(rel, node)


def write_diff(upper: str, writer: TarWriter) -> None:
    """An overlayfs upper dir as an OCI layer: whiteout devices become `.wh.NAME`, opaque dirs get
    a `.wh..wh..opq` marker. Read as a plain tree: whiteouts are entries here, not hidden ones."""
    fds = open_layer_dirs([upper])
    try:
        for rel, node in _walk_plain(fds[0], "") if fds else ():
            if is_whiteout(node.st):
                head, _, name = rel.rpartition("/")
                writer.add_empty_file(f"{head}/{WHITEOUT_PREFIX}{name}" if head else WHITEOUT_PREFIX + name)
                continue
            if writer.add(rel, node) == tarfile.DIRTYPE and is_opaque_at(node.dirfd, node.name):
                writer.add_empty_file(f"{rel}/{OPAQUE_MARKER}")
    finally:
        close_all(fds)


def _walk_plain(dirfd: int, rel: str) -> Iterator[tuple[str, Node]]:
    """Every entry below `dirfd` as it is on disk (whiteouts and opaque dirs included), never following a link."""
    with os.scandir(dirfd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        r = f"{rel}/{name}" if rel else name
        yield r, Node(dirfd, name, st)
        if stat.S_ISDIR(st.st_mode):
            sub = open_subdirs([dirfd], name)
            try:
                for fd in sub:
                    yield from _walk_plain(fd, r)
            finally:
                close_all(sub)
