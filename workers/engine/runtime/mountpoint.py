"""Mount destinations inside the rootfs, opened race-free and mounted through their descriptor.

Checking a destination path and then mounting onto it by name loses to a process that swaps a component
for a symlink in between: a container sharing a volume with the one being set up can do so from outside,
and the mount then lands on a host path of the new mount namespace before pivot_root, where the runtime
still reads the host's files (runc's CVE-2021-30465). As runc does, the destination is reached one
component at a time relative to the rootfs descriptor (symlinks resolved inside the rootfs, none followed
at open time), made when missing, and the mount targets `/proc/self/fd/N` of what was opened.
"""

from __future__ import annotations

import errno
import os
import stat

from workers.engine.confined import open_beneath, resolve_in_root

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
# Annotation: JSON list of destinations whose bind source must be reached from / without any symlink
# (sources a tenant may write near; see containers/bundle.py confined_bind_source).
NOFOLLOW_SOURCES = "org.berth.mounts.nofollow-sources"


def fd_target(fd: int) -> str:
    """The path mount(2) takes for a descriptor (the kernel follows this magic link to the object itself)."""
    return f"/proc/self/fd/{fd}"


def _step(dirfd: int, name: str, want_dir: bool, make: bool) -> int:
    """`name` in `dirfd`, never a symlink, made (as a dir or an empty file) when missing and `make`."""
    for _ in range(3):  # lose a mkdir race at most a few times, then give up
        try:
            fd = os.open(name, _PATH, dir_fd=dirfd)
        except FileNotFoundError:
            if not make:
                raise
            try:  # not contextlib.suppress: its import is felt in the runtime command line's start
                if want_dir:
                    os.mkdir(name, 0o755, dir_fd=dirfd)
                else:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o755, dir_fd=dirfd))
            except FileExistsError:
                pass
            continue
        mode = os.fstat(fd).st_mode
        if stat.S_ISLNK(mode) or (want_dir and not stat.S_ISDIR(mode)):
            os.close(fd)
            raise OSError(errno.ELOOP if stat.S_ISLNK(mode) else errno.ENOTDIR,
                          "changed under the runtime" if stat.S_ISLNK(mode) else os.strerror(errno.ENOTDIR), name)
        return fd
    raise OSError(errno.EAGAIN, "mount destination keeps changing", name)


def open_destination(rootfs: str, destination: str, *, directory: bool, make: bool = True) -> int:
    """An O_PATH descriptor of `destination` inside `rootfs` (a directory, or a file for a file bind)."""
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = resolve_in_root(rootfd, destination)
        cur = os.dup(rootfd)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                nxt = _step(cur, part, want_dir=directory or not last, make=make)
            finally:
                os.close(cur)
            cur = nxt
        return cur
    finally:
        os.close(rootfd)


def reopen_mounted(rootfs: str, destination: str, under: os.stat_result, source: os.stat_result | None) -> int:
    """The destination again, after a mount onto it: now the root of that mount. Checked to be it (the bind's
    source inode, or another device than the directory mounted over), else a swap moved it: refused."""
    fd = open_destination(rootfs, destination, directory=stat.S_ISDIR(under.st_mode), make=False)
    st = os.fstat(fd)
    same_as_source = source is not None and (st.st_dev, st.st_ino) == (source.st_dev, source.st_ino)
    if not same_as_source and (st.st_dev, st.st_ino) == (under.st_dev, under.st_ino):
        os.close(fd)
        raise OSError(errno.EXDEV, "the mount destination changed during the mount", destination)
    if source is not None and not same_as_source:
        os.close(fd)
        raise OSError(errno.EXDEV, "the mount destination changed during the mount", destination)
    return fd


def open_source_nofollow(source: str) -> int:
    """An O_PATH descriptor of an absolute bind source with no symlink anywhere on its path (else ELOOP)."""
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_beneath(rootfd, source.lstrip("/"), os.O_PATH)
    finally:
        os.close(rootfd)
