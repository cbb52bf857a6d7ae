"""The overlayfs merged view of a stack of layer directories, read by the host without leaving them.

A container's upper dir changes under our feet while it runs, and image layers come from hostile archives.
Everything here goes through directory descriptors: entries are looked up with fstatat(AT_SYMLINK_NOFOLLOW)
and opened with O_NOFOLLOW relative to the descriptor of their own directory, so a name swapped for a symlink
between two calls makes the open fail (ELOOP) instead of reaching a host file. Symlinks inside the view are
followed only by `resolve`, which interprets their targets inside the view (absolute targets start again at
its root, `..` stops at the root), as the container itself would see them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from workers.engine.confined import fd_path, split

from .tarsafe import OVERLAY_OPAQUE_XATTR

_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_at(dirfd: int, name: str = "") -> bool:
    """Whether the directory `name` in `dirfd` (or `dirfd` itself) is an overlay opaque directory."""
    try:
        return os.getxattr(fd_path(dirfd, name), OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            return False
        raise


@dataclass
class Node:
    """One entry of a tree: its name in the directory `dirfd` (valid while the walk is at it) and its lstat."""

    dirfd: int
    name: str
    st: os.stat_result


def open_layer_dirs(layers: list[str]) -> list[int]:
    """Descriptors of the layer directories that exist, topmost first (the caller closes them)."""
    fds = []
    for layer in layers:
        try:
            fds.append(os.open(layer, _DIR_FLAGS))
        except FileNotFoundError:
            continue
    return fds


def close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _lstat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def lookup(dirs: list[int], name: str) -> tuple[Node | None, list[int]]:
    """`name` in a merged directory made of `dirs` (topmost first): the entry the view shows, and, when it is a
    directory, the parent descriptors of every layer contributing to it (down to an opaque one)."""
    found: Node | None = None
    contributing: list[int] = []
    for fd in dirs:
        st = _lstat(fd, name)
        if st is None:
            continue
        if is_whiteout(st):
            break
        if found is None:
            found = Node(fd, name, st)
            if not stat.S_ISDIR(st.st_mode):
                break
        elif not stat.S_ISDIR(st.st_mode):
            break  # a lower non-directory is hidden by the directory above it
        contributing.append(fd)
        if is_opaque_at(fd, name):
            break
    return found, contributing


def open_subdirs(parents: list[int], name: str) -> list[int]:
    """Open `name` in each parent; a layer where it has meanwhile become something else drops out."""
    out = []
    for fd in parents:
        try:
            out.append(os.open(name, _DIR_FLAGS, dir_fd=fd))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            if e.errno != errno.ELOOP:  # swapped for a symlink: never followed
                close_all(out)
                raise
    return out


def listing(dirs: list[int]) -> list[tuple[str, Node, list[int]]]:
    """The merged directory's entries, sorted: (name, entry, contributing parents when a directory)."""
    names: set[str] = set()
    for fd in dirs:
        with os.scandir(fd) as it:
            names.update(e.name for e in it)
    out = []
    for name in sorted(names):
        node, parents = lookup(dirs, name)
        if node is not None:
            out.append((name, node, parents))
    return out


def walk(dirs: list[int], rel: str = "") -> Iterator[tuple[str, Node]]:
    """Every entry of the merged view below `dirs`, parents first, sorted by name."""
    for name, node, parents in listing(dirs):
        r = f"{rel}/{name}" if rel else name
        yield r, node
        if stat.S_ISDIR(node.st.st_mode):
            sub = open_subdirs(parents, name)
            try:
                yield from walk(sub, r)
            finally:
                close_all(sub)


@dataclass
class Resolved:
    """A path looked up in the view: its components with every symlink resolved, and its entry if it exists."""

    parts: list[str]
    node: Node | None


class View:
    """The merged view of `layers` (topmost first); use as a context manager."""

    def __init__(self, layers: list[str]):
        self.roots = open_layer_dirs(layers)
        self._open: list[int] = []

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc) -> None:
        close_all(self._open)
        close_all(self.roots)

    def resolve(self, path: str) -> Resolved:
        """Follow `path` through the view as a process chrooted in it would; missing components end the walk."""
        todo = split(path)
        done: list[str] = []
        stack = [self.roots]
        hops = 0
        node: Node | None = None
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue  # only ever after a directory (checked below)
            if part == "..":
                if done:
                    done.pop()
                    stack.pop()
                continue
            node, parents = lookup(stack[-1], part)
            if node is None:
                return Resolved(done + [part] + [p for p in todo if p not in ("..", ".")], None)
            if stat.S_ISLNK(node.st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=node.dirfd)
                if target.startswith("/"):
                    done, stack = [], [self.roots]
                todo = split(target) + todo
                node = None
                continue
            done.append(part)
            if todo:
                if not stat.S_ISDIR(node.st.st_mode):
                    return Resolved(done + [p for p in todo if p not in ("..", ".")], None)
                sub = open_subdirs(parents, part)
                self._open.extend(sub)
                stack.append(sub)
        if not done:
            st = os.fstat(self.roots[0]) if self.roots else None
            return Resolved([], Node(self.roots[0], ".", st) if st else None)
        return Resolved(done, node)

    def read_file(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """The contents of a regular file of the view (at most `limit` bytes), None when it is not one."""
        try:
            found = self.resolve(path).node
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                return None  # a link loop or a path through a non-directory: no such file, as open(2) says
            raise
        if found is None or not stat.S_ISREG(found.st.st_mode):
            return None
        try:
            fd = os.open(found.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=found.dirfd)
        except OSError:
            return None  # swapped meanwhile: not followed, not read
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            chunks, left = [], limit
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
