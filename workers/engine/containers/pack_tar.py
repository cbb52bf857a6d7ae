"""A move's pack framed as tar by hand (move_pack.py): each member's data passes between the caller and the stream
as it is, never through tarfile's stream buffers.

tarfile's stream mode copies what it passes two or three times: its write buffer is a bytes object rebuilt on each
write and sliced per block of output, its read buffer is joined and sliced on each read, and a member is read
through one more buffered reader. A 250 MB pack (bench/move.py) went through that on both hosts. The headers here
are still tarfile's own (TarInfo.tobuf, and TarInfo.frombuf, which checks the checksum); a pack has only regular
files with short names, so it needs no extension header (a size past 8 GiB is written base-256, GNU style).
What the reader is sent is hostile input: anything but a regular file's header is refused. Django-free."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from ..images.errors import ImageError
from ..images.fsutil import read_full

BLOCK = 512
ZEROS = bytes(BLOCK)
END = bytes(2 * BLOCK)  # the end-of-archive marker
CHUNK = 1 << 20
NAME_MAX = 99  # bytes: a longer name would need a GNU long-name member


class PackError(ImageError):
    """A pack that is not what it says (a bad name, a digest that does not match, a missing blob)."""


def header(name: str, size: int) -> bytes:
    """The 512-byte header of a regular file member `name` of `size` bytes."""
    if len(name.encode()) > NAME_MAX:
        raise ValueError(f"pack member name too long: {name[:120]!r}")
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def kept(data: bytes | memoryview) -> bytes | memoryview:
    """`data` as it may be held until sent: bytes or a view of bytes as they are (immutable), anything else (a
    buffer its writer may reuse) copied."""
    if isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes)):
        return data
    return bytes(data)


class Parts:
    """What is written, cut into parts of `size` bytes (which may change between the parts `add` yields), each the
    list of chunks as written (pieces of a write that straddles two are views of it): nothing is copied."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.chunks: list = []  # the part begun
        self.held = 0  # bytes in it

    def add(self, data: bytes | memoryview) -> Iterator[list]:
        """Take `data` (it is kept: see `kept`); yields each part it completes."""
        view = data if len(data) <= self.size - self.held else memoryview(data)
        while view:
            take = view if len(view) <= self.size - self.held else view[:self.size - self.held]
            self.chunks.append(take)
            self.held += len(take)
            view = view[len(take):]
            if self.held == self.size:
                part, self.chunks, self.held = self.chunks, [], 0
                yield part

    def rest(self) -> list:
        """The part begun (maybe empty), taken."""
        part, self.chunks, self.held = self.chunks, [], 0
        return part


def padding(size: int) -> bytes:
    """What follows a member's `size` bytes of data up to the next block."""
    return ZEROS[:-size % BLOCK]


class PackTarReader:
    """The members of a tar stream read one after another: `next()` gives (name, size) of the next member, or None
    at the end-of-archive block; `read(n)` its data: at most n bytes, as the stream gives them (fewer is not the
    end; b"" is). A stream that ends early, a corrupt header or a member that is not a regular file: PackError."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.left = 0  # bytes of the current member's data not read yet
        self.pad = 0  # its padding after them

    def next(self) -> tuple[str, int] | None:
        self.skip()
        block = self._exact(BLOCK, "a member's header")
        if block == ZEROS:
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise PackError(f"a corrupt member header in the pack ({exc})") from None
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise PackError(f"unexpected entry {info.name[:80]!r} (not a file)")
        self.left, self.pad = info.size, -info.size % BLOCK
        return info.name, info.size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:  # the rest of the member (file semantics; only small members are read so)
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if not self.left or not n:
            return b""
        chunk = self.stream.read(min(n, self.left))
        if not chunk:
            raise PackError("the pack ended early (inside a member): send it again")
        if len(chunk) > self.left:  # a stream that gives more than it was asked for
            raise PackError("the pack's stream gave more than was asked for")
        self.left -= len(chunk)
        return chunk

    def readable(self) -> bool:
        return True

    def skip(self) -> None:
        """Past the rest of the current member and its padding."""
        while self.read(CHUNK):
            pass
        if self.pad:
            self._exact(self.pad, "a member's padding")
            self.pad = 0

    def _exact(self, n: int, what: str) -> bytes:
        got = read_full(self.stream, n)
        if len(got) < n:
            raise PackError(f"the pack ended early (in {what}): send it again")
        return got


__all__ = ["END", "PackError", "PackTarReader", "Parts", "header", "kept", "padding"]
