"""A cap on how many bytes an import or load may expand to.

A 1 MiB gzip of zeros is 1 GiB of tar; the compressed upload size says nothing about the disk a job
will fill. One Budget covers a whole job: every decompressed byte read (the outer archive's tar
stream and each layer's) is counted, and the read that goes over the cap raises TooLarge, so the
job stops while its partial files are still in its temp dirs (which the store removes on error).
"""

from __future__ import annotations

from typing import BinaryIO

from .errors import TooLarge


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.3g} {unit}" if v != int(v) else f"{int(v)} {unit}"
    return f"{n} B"


class Budget:
    """At most `limit` expanded bytes for one job (None: no cap)."""

    def __init__(self, limit: int | None, what: str = "archive") -> None:
        self.limit = int(limit) if limit is not None else None
        self.what = what
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.limit is not None and self.used > self.limit:
            raise TooLarge(f"expands to more than {human(self.limit)}, the most an upload may take once "
                           "decompressed; nothing was kept", self.what)

    def wrap(self, stream: BinaryIO) -> BinaryIO:
        return stream if self.limit is None else _Counted(stream, self)  # type: ignore[return-value]


class _Counted:
    def __init__(self, inner: BinaryIO, budget: Budget) -> None:
        self.inner, self.budget = inner, budget

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.budget.take(len(data))
        return data

    def readable(self) -> bool:
        return True
