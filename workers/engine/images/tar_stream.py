"""A one-way stream as tarfile's plain reader (mode "r:") sees it: tell(), and seek() forward only.

tarfile's stream mode ("r|") reads through its _Stream, which joins each block to what was left of the last and
slices both again: every byte of a member's data was copied two or three times more (the user CPU of one 200 MB
layer's extract: 0.10-0.19 s through it, 0.02-0.04 s without; bench/README.md, tenth pass). The plain reader
asks the file for exactly what it needs (a header, a pax record, a member's data) and seeks past what it did not
read; a stream can do both going forward. A seek back is refused (tarfile never needs one to read an archive in
order)."""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from .fsutil import CHUNK, read_full


class ForwardStream:
    """`raw` read once, front to back; `read(n)` is exact (fewer bytes only at the end), `read_some(n)` is
    whatever one read of `raw` gives (a member's data, passed on as it is)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.pos = 0

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return False

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self.pos:
            raise tarfile.ReadError(f"the archive would be read backwards (to byte {pos} from {self.pos})")
        while self.pos < pos:
            if not self.read_some(min(CHUNK, pos - self.pos)):
                break  # past the end: the next read finds nothing, which tarfile reports
        return self.pos

    def read_some(self, n: int) -> bytes:
        data = self.raw.read(n)
        self.pos += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("ForwardStream.read needs a size")
        data = read_full(self.raw, n)
        self.pos += len(data)
        return data
