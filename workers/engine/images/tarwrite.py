"""Streaming tar output: a tree, the merged view of overlay layers (export) and an upper dir (commit).

Headers come from tarfile; file data is copied in 1 MiB chunks straight to the output, so memory stays
flat whatever the size of the tree.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from .fsutil import CHUNK
from .tarsafe import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX

_XATTRS_OUT = ("user.", "security.capability")
ZERO_BLOCK = b"\0" * tarfile.BLOCKSIZE


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


class TarWriter:
    """Write tar entries for paths on disk; hard links (same inode twice) become link entries."""

    def __init__(self, out: BinaryIO, mtime: int | None = None, progress=None):
        self.out = out
        self.mtime = mtime  # fixed mtime for reproducible layers (base images)
        self.written = 0
        self._progress = progress
        self._inodes: dict[tuple[int, int], str] = {}
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

    def add(self, rel: str, path: str, st: os.stat_result) -> None:
        info = self._info(rel, st)
        mode = st.st_mode
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._inodes.get(key)
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                self._header(info)
                return
            self._inodes[key] = rel
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return  # sockets and the like have no tar form
        xattrs = self._xattrs(path)
        if xattrs:
            info.pax_headers = xattrs
        self._header(info)
        if info.type == tarfile.REGTYPE and info.size:
            self._copy(path, info.size)

    def _xattrs(self, path: str) -> dict[str, str]:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return {}
        out = {}
        for name in names:
            if name.startswith(_XATTRS_OUT):
                value = os.getxattr(path, name, follow_symlinks=False)
                out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        return out

    def _copy(self, path: str, size: int) -> None:
        # The size is already in the header: a file that shrinks meanwhile is padded, one that grows is cut.
        remaining = size
        with open(path, "rb", buffering=0) as f:
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
        info = tarfile.TarInfo(rel)
        info.mode = 0o644
        info.mtime = self.mtime if self.mtime is not None else (mtime or 0)
        self._header(info)

    def close(self) -> None:
        self._write(ZERO_BLOCK * 2)
        self.out.flush()


def _sorted_entries(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def walk_tree(root: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of everything under `root`, parents first, sorted."""
    for entry in _sorted_entries(os.path.join(root, rel) if rel else root):
        r = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield r, entry.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk_tree(root, r)


def walk_merged(layers: list[str], rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """The overlayfs merged view of `layers` (topmost first) computed here, honouring whiteouts and
    opaque directories, one directory in memory at a time."""
    entries: dict[str, tuple[str, os.stat_result]] = {}
    below: dict[str, list[str]] = {}
    closed: set[str] = set()  # names that lower layers may no longer contribute to
    for layer in layers:
        try:
            listing = _sorted_entries(layer)
        except FileNotFoundError:
            continue
        for entry in listing:
            name = entry.name
            if name in closed:
                continue
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                closed.add(name)
                if name not in entries and not is_whiteout(st):
                    entries[name] = (entry.path, st)
                continue
            if name not in entries:
                entries[name] = (entry.path, st)
                below[name] = []
            below[name].append(entry.path)
            if is_opaque(entry.path):
                closed.add(name)
    for name in sorted(entries):
        path, st = entries[name]
        r = f"{rel}/{name}" if rel else name
        yield r, path, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk_merged(below[name], r)


def write_tree(root: str, writer: TarWriter) -> None:
    for rel, path, st in walk_tree(root):
        writer.add(rel, path, st)


def write_merged(layers: list[str], writer: TarWriter) -> None:
    for rel, path, st in walk_merged(layers):
        writer.add(rel, path, st)


def write_diff(upper: str, writer: TarWriter) -> None:
    """An overlayfs upper dir as an OCI layer: whiteout devices become `.wh.NAME`, opaque dirs get
    a `.wh..wh..opq` marker."""
    for rel, path, st in walk_tree(upper):
        if is_whiteout(st):
            head, _, name = rel.rpartition("/")
            writer.add_empty_file(f"{head}/{WHITEOUT_PREFIX}{name}" if head else WHITEOUT_PREFIX + name)
            continue
        writer.add(rel, path, st)
        if stat.S_ISDIR(st.st_mode) and is_opaque(path):
            writer.add_empty_file(f"{rel}/{OPAQUE_MARKER}")
