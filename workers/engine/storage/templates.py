"""Empty filesystems made once per size and copied, instead of mkfs for every container's disk.

mkfs.ext4 of a sparse 10 GiB image takes 10 ms here with no container running and more with 1,000 (it
reads the whole mount table to see whether the image is mounted); copying the data extents of a fresh one
(about 4 MiB: superblocks, group descriptors, the journal's start) takes 1-2 ms. The copies share the
template's filesystem UUID, which the kernel does not mind (ext4 needs no unique UUID; each copy is
mounted once, by its own loop device) and nothing in Berth reads.

A template is made under a temporary name and renamed into place, so concurrent creates either find a
whole one or make their own; its name carries the size and a digest of the mkfs options, so a change of
options makes new templates rather than reusing old ones. At most KEEP templates stay (the oldest go).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

KEEP = 8


def _name(size: int) -> str:
    from .quota import MKFS_OPTIONS

    digest = hashlib.sha256(" ".join(MKFS_OPTIONS).encode()).hexdigest()[:12]
    return f"ext4-{size}-{digest}.disk"


def copy_to(templates: Path, size: int, image: Path, mkfs: Callable[[Path, int], None]) -> None:
    """Write an empty filesystem of `size` bytes to the new file `image`, from the template of that size
    (made with `mkfs` first if there is none)."""
    template = templates / _name(size)
    if not template.exists():
        _make(templates, template, size, mkfs)
    try:
        src = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # pruned by another create in between: this one makes the disk itself
        mkfs(image, size)
        return
    try:
        dst = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _copy_extents(src, dst, os.fstat(src).st_size)
            os.fdatasync(dst)  # as mkfs does: a host crash must not leave a half-written filesystem to mount
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_extents(src: int, dst: int, size: int) -> None:
    """Copy only the data of a sparse file (SEEK_DATA/SEEK_HOLE); the holes stay holes."""
    os.ftruncate(dst, size)
    off = 0
    while off < size:
        try:
            data = os.lseek(src, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after `off`
                break
            raise
        hole = os.lseek(src, data, os.SEEK_HOLE)
        while data < hole:
            try:
                n = os.copy_file_range(src, dst, hole - data, data, data)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                chunk = os.pread(src, min(hole - data, 1 << 20), data)  # a filesystem without it
                n = os.pwrite(dst, chunk, data) if chunk else 0
            if n == 0:
                raise OSError(errno.EIO, "the disk template ended while it was copied")
            data += n
        off = hole


def _make(templates: Path, template: Path, size: int, mkfs: Callable[[Path, int], None]) -> None:
    templates.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = templates / f".{secrets.token_hex(6)}.tmp"
    try:
        mkfs(tmp, size)
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)  # whole on disk before its name says it is a template
        finally:
            os.close(fd)
        os.rename(tmp, template)
    finally:
        tmp.unlink(missing_ok=True)
    _prune(templates)


def _prune(templates: Path) -> None:
    """Keep the KEEP newest templates; remove what a create killed while making one left (a minute old)."""
    for p in templates.glob(".*.tmp"):
        try:
            if p.stat().st_mtime < time.time() - 60:
                p.unlink()
        except FileNotFoundError:
            pass
    kept = []
    for p in templates.glob("ext4-*.disk"):
        try:
            kept.append((p.stat().st_mtime, p))
        except FileNotFoundError:
            pass
    for _, p in sorted(kept, reverse=True)[KEEP:]:
        p.unlink(missing_ok=True)
