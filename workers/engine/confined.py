"""Opening files inside a container's or an image's tree without ever leaving it.

The host (root) reads and writes trees that a container controls while it runs: a container can swap any
entry for a symlink at any moment (e.g. `renameat2(RENAME_EXCHANGE)` in a loop). Checking a path and then
opening it by name is therefore a race the container wins. Every host-side operation on such a tree goes
through a directory file descriptor and `openat2(2)`:

- RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: every component must be a real entry below the directory; a symlink
  anywhere (or a `..` that climbs out) fails with ELOOP/EXDEV instead of being followed. Used when walking a
  tree (export, commit), where symlinks are data to copy, never to follow.
- RESOLVE_IN_ROOT semantics (resolve_in_root): symlinks are followed as if the directory were `/` (absolute
  targets and `..` stay inside), as a process chrooted there would see them; the result is then opened with no
  symlink allowed. Used to look a path up the way the container sees it (mount destinations).

Kernels before 5.6 lack openat2: there the same rules are applied one component at a time with O_NOFOLLOW
(each step relative to the previous directory's descriptor, so a swap mid-walk cannot redirect it).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_OPENAT2 = 437  # the same number on every architecture that has it (x86_64, aarch64, …)
_MAX_SYMLINKS = 40  # as the kernel's MAXSYMLINKS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_have_openat2: bool | None = None


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """The openat2 system call; OSError as os.open raises it."""
    if not flags & (os.O_CREAT | os.O_TMPFILE):
        mode = 0  # openat2 refuses a mode it would not use (EINVAL), unlike open(2)
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        fd = _libc.syscall(_SYS_OPENAT2, ctypes.c_int(dirfd), os.fsencode(path), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN and err != errno.EINTR:  # EAGAIN: a rename raced the lookup; the kernel asks us to retry
            raise OSError(err, os.strerror(err), path)


def _openat2_works() -> bool:
    global _have_openat2
    if _have_openat2 is None:
        try:
            os.close(openat2(-100, "/", os.O_PATH, RESOLVE_NO_SYMLINKS))  # AT_FDCWD
            _have_openat2 = True
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter that does not know it
                raise
            _have_openat2 = False
    return _have_openat2


def split(path: str) -> list[str]:
    """The components of a path, without empty parts and `.`, except a final "." for a trailing "/" or "/.":
    it keeps the kernel's rule that such a path must name a directory (ENOTDIR otherwise)."""
    parts = [p for p in path.split("/") if p and p != "."]
    if parts and (path.endswith("/") or path.endswith("/.")):
        parts.append(".")
    return parts


def _walk_nofollow(dirfd: int, parts: list[str], flags: int, mode: int) -> int:
    """RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS by hand: one openat(O_NOFOLLOW) per component."""
    if any(p == ".." for p in parts):
        raise OSError(errno.EXDEV, "path climbs out of its root", "/".join(parts))
    cur = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            os.close(cur)
            cur = nxt
        if not parts:
            return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=cur)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
    finally:
        os.close(cur)


def open_beneath(dirfd: int, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open `path` below `dirfd` refusing every symlink and every way out (ELOOP, EXDEV)."""
    if _openat2_works():
        return openat2(dirfd, path or ".", flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
                       | RESOLVE_NO_XDEV, mode)
    return _walk_nofollow(dirfd, split(path), flags, mode)


def resolve_in_root(dirfd: int, path: str) -> list[str]:
    """The components of `path` with every symlink resolved as if `dirfd` were `/` (never above it).

    For the fallback walk and for callers that need the resolved name (e.g. to create what is missing). A
    component that does not exist ends the resolution: the rest is appended as given (minus `..` above root).
    """
    todo = split(path)
    done: list[str] = []
    hops = 0
    fds = [os.dup(dirfd)]  # fds[i] is the directory of done[:i]
    try:
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue  # only ever after a directory (checked below), so nothing to do
            if part == "..":
                if done:
                    done.pop()
                    os.close(fds.pop())
                continue
            try:
                st = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                done.append(part)
                done.extend(p for p in todo if p not in ("..", "."))  # what is missing cannot contain links
                return done
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=fds[-1])
                if target.startswith("/"):
                    while len(fds) > 1:
                        os.close(fds.pop())
                    done = []
                todo = split(target) + todo
                continue
            done.append(part)
            if todo:
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                fds.append(os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1]))
        return done
    finally:
        for fd in fds:
            os.close(fd)


def fd_path(dirfd: int, name: str = "") -> str:
    """A path naming `name` inside the directory `dirfd`, for calls that take no dir_fd (l*xattr).

    /proc/self/fd/N is the directory itself (a descriptor we hold), and the final component is not followed
    by the l* calls, so nothing a container does can redirect it."""
    return f"/proc/self/fd/{dirfd}/{name}" if name else f"/proc/self/fd/{dirfd}"
