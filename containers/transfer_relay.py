"""A relay streamed through the web server (a move's pack, issue 18): one host's worker appends parts while
another host's worker already reads what arrived, so neither side waits for the whole pack.

The file is `uploads/<transfer id>.upload` from its first part on. The sender PUTs parts of at most PART bytes
(an ASGI server keeps such a body in memory: webapp/asgi_handler.py) with the offset they start at: a part that does
not start where the file ends is refused (409), so a lost or repeated part cannot corrupt the stream. The last
part (`end=1`) makes the file read-only (the reader's sign that it is whole, seen with one fstat) and turns the
row into an ordinary upload of that size. The reader follows the file as it grows; it ends early, cutting the
stream, when the file is unlinked (DELETE: the transfer was given up or consumed; or swept), when its row is gone
before the file appeared, or when nothing arrived for STALL seconds: the pack then lacks its end and its
digests, which the receiver refuses. The sweep keeps the file while its row and
job are alive (containers/transfer.py); nothing is fsynced (it lives until its reader took it)."""

from __future__ import annotations

import os
import stat
import time

from django.http import HttpRequest
from django.utils import timezone

from . import transfer
from .transfer_model import Transfer

# Bytes per PUT: each request costs the web server several ms whatever its size, so few large parts (2 MiB parts
# held a 250 MB pack to 110 MB/s through the relay, 8 MiB ones to 200); kept in memory by webapp/asgi_handler.py.
PART = 8 << 20
STALL = 60.0  # seconds without a byte after which a reader gives up
STEP = 0.002  # seconds a reader at the end of the file waits before it looks again
ROW_EVERY = 0.5  # seconds between looks at the row while the file is not there yet (is it still wanted?)
CHUNK = 1 << 20


class RelayRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def append_part(request: HttpRequest, row: Transfer, offset: int, length: int, end: bool) -> int:
    """Append one part of the request's body at `offset` of the relay's file; returns the file's size."""
    path = transfer.staged_upload(row)
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | (os.O_CREAT | os.O_EXCL if offset == 0 else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise RelayRefused(409, "conflict", "the relay has its first part already") from None
    except FileNotFoundError:
        raise RelayRefused(409, "conflict", "the relay's first part is missing") from None
    try:
        st = os.fstat(fd)
        if st.st_size != offset or not st.st_mode & stat.S_IWUSR:
            raise RelayRefused(409, "conflict", f"the relay is at byte {st.st_size}, not {offset}, or ended")
        left = length
        while left:
            chunk = request.read(min(CHUNK, left))
            if not chunk:
                raise RelayRefused(400, "incomplete", f"the part ended after {length - left} of {length} bytes")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            left -= len(chunk)
        size = offset + length
        if end:
            os.fchmod(fd, 0o400)  # whole: a reader at its end stops there
            Transfer.objects.filter(pk=row.pk, kind=Transfer.Kind.RELAY).update(
                kind=Transfer.Kind.UPLOAD, size=size, expires=timezone.now() + transfer.ttl())
        return size
    finally:
        os.close(fd)


class GrowingFile:
    """The relay's file read as it grows (see the module docstring); a file-like object for a streamed response.
    Once the file is open the file itself says everything (no database query while data flows): read-only is
    whole, unlinked (consumed, dropped, swept) is cut."""

    def __init__(self, row: Transfer) -> None:
        self.pk = row.pk
        self.path = transfer.staged_upload(row)
        self.fd = -1
        self.pos = 0

    def read(self, n: int = CHUNK) -> bytes:
        idle_since = last_row = time.monotonic()
        while True:
            if self.fd < 0:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
                except FileNotFoundError:
                    now = time.monotonic()
                    if now - last_row >= ROW_EVERY:  # not there yet: is it still wanted?
                        last_row = now
                        if not _row_exists(self.pk):
                            return b""
            if self.fd >= 0:
                chunk = os.pread(self.fd, n, self.pos)
                if chunk:
                    self.pos += len(chunk)
                    return chunk
                st = os.fstat(self.fd)
                if (not st.st_mode & stat.S_IWUSR or st.st_nlink == 0) and self.pos >= st.st_size:
                    return b""  # whole and all read, or dropped: the stream ends (cut, if dropped)
            if time.monotonic() - idle_since >= STALL:
                return b""
            time.sleep(STEP)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _row_exists(pk) -> bool:
    """One look at the row from whatever thread streams the response (an ASGI server's pool): its connection
    is given back at once, as a request would (PostgreSQL's pool; nothing outside a test's transaction)."""
    from django.db import connection

    try:
        return Transfer.objects.filter(pk=pk).exists()
    finally:
        if not connection.in_atomic_block:
            connection.close()
