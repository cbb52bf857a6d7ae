"""A directory tree in a move's pack (move_pack.py: a volume's data, the upper dir), sent in pieces as it is read.

A tar member's size comes before its data, so a tree's tar could be one member of the pack only once it had been
made whole: staged in a file, a second copy of the volume on the sender's disk before a byte left (and of the
upper dir, 50 MB of a move's 250 written, read and hashed again first: bench/move.py). Here a thread writes the
tree's tar (an OCI layer: whiteouts as `.wh.` entries, nothing followed out of the tree) into pieces of PIECE
bytes, at most AHEAD of them ahead of the sender, and each piece is a member `<tree>/<index>` of the pack (index
000000 up). The receiver joins a tree's pieces back into one stream as they arrive (Joined), so it unpacks while
the sender still reads the tree. The tree's digest is that of the joined tar. Django-free."""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..images.tarwrite import TarWriter, write_diff
from .pack_tar import PackTarReader, Parts, kept

PIECE = 8 << 20
AHEAD = 4  # pieces made before the sender takes them: the trees are read while the blobs are sent
CHUNK = 1 << 20
PIECE_RE = re.compile(r"(.+)/([0-9]{6})")
Piece = list  # of bytes-like chunks, in order


def piece_name(tree: str, index: int) -> str:
    return f"{tree}/{index:06d}"


def piece_of(name: str) -> tuple[str, int] | None:
    """(tree, index) of a piece's member name, or None."""
    match = PIECE_RE.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


class _Stopped(Exception):
    """The sender went away: the thread that makes the pieces ends."""


class _Cutter:
    """A file-like sink for TarWriter: what is written leaves in pieces of PIECE bytes through `put`, hashed (each
    the list of chunks written: pack_tar.Parts)."""

    def __init__(self, tree: str, put: Callable[[tuple], None]) -> None:
        self.tree, self.put = tree, put
        self.parts = Parts(PIECE)
        self.hash = hashlib.sha256()
        self.size = self.index = 0

    def write(self, data: bytes) -> int:
        data = kept(data)
        self.hash.update(data)
        self.size += len(data)
        for piece in self.parts.add(data):
            self._emit(piece)
        return len(data)

    def flush(self) -> None:
        pass

    def _emit(self, piece: Piece) -> None:
        self.put((piece_name(self.tree, self.index), piece, None))
        self.index += 1

    def close(self) -> None:
        if self.parts.held or self.index == 0:
            self._emit(self.parts.rest())


class TreeSource:
    """The pack's trees, [(tree name, directory, kind)], read in order by a thread of their own. `items()` yields
    (member name, piece, None) for each piece, then (tree name, None, (digest, size, kind)) after a tree's last;
    it raises what failed in the thread. Leaving the `with` stops the thread whatever happened."""

    def __init__(self, trees: list[tuple[str, Any, str]]) -> None:
        self.trees = trees
        self.queue: queue.Queue = queue.Queue(maxsize=AHEAD)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pack-trees", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=0.1)
                return
        raise _Stopped

    def _run(self) -> None:
        end: BaseException | None = None
        try:
            for tree, directory, kind in self.trees:
                cutter = _Cutter(tree, self._put)
                writer = TarWriter(cutter)
                write_diff(str(directory), writer)
                writer.close()
                cutter.close()
                self._put((tree, None, ("sha256:" + cutter.hash.hexdigest(), cutter.size, kind)))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - raised in the sender's thread by items()
            end = exc
        with contextlib.suppress(_Stopped):
            self._put(end)  # None: every tree was sent

    def items(self) -> Iterator[tuple[str, Piece | None, tuple[str, int, str] | None]]:
        while (item := self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def __enter__(self) -> TreeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


class Joined:
    """One tree's pieces read as one stream from the pack (`pack`, a PackTarReader at the data of the tree's piece
    0): read() goes on into the next member while it is this tree's next piece. The first member
    that is not, (name, size), or None at the end of the pack, is left in `after` for the pack's reader."""

    def __init__(self, pack: PackTarReader, tree: str) -> None:
        self.pack, self.tree = pack, tree
        self.index = 0
        self.after: tuple[str, int] | None = None
        self.done = False

    def read(self, n: int = -1) -> bytes:
        while not self.done:
            chunk = self.pack.read(n if n is not None and n > 0 else CHUNK)
            if chunk:
                return chunk
            member = self.pack.next()
            if member is not None and piece_of(member[0]) == (self.tree, self.index + 1):
                self.index += 1
                continue
            self.after, self.done = member, True
        return b""
