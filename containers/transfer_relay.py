"""A relay streamed through the web server (a move's pack, issue 18): one host's worker appends parts while
another host's worker already reads what arrived, so neither side waits for the whole pack.

The file is `uploads/<transfer id>.upload` from its first part on. The sender PUTs parts of at most PART bytes
with the offset they start at: a part that does not start where the file ends is refused (409), so a lost or
repeated part cannot corrupt the stream. The last part (`end=1`) makes the file read-only (the reader's sign that
it is whole, seen with one fstat) and turns the row into an ordinary upload of that size. The reader follows the
file as it grows; it ends early, cutting the stream, when the file is unlinked (DELETE: the transfer was given up
or consumed; or swept), when its row is gone before the file appeared, or when nothing arrived for STALL seconds:
the pack then lacks its end and its digests, which the receiver refuses. The sweep keeps the file while its row and
job are alive (containers/transfer.py); nothing is fsynced (it lives until its reader took it).

This module holds the file's rules, free of any transport: Django's view (containers/transfer_views.py) drives
them under WSGI and for a test client, containers/transfer_asgi.py drives them on the ASGI server's event loop
(no Django request, no thread per block: the web server's cost per byte, bench/move.py)."""

from __future__ import annotations

import os
import stat
import time

from django.conf import settings
from django.utils import timezone

from . import transfer
from .models import Job
from .transfer_model import Transfer

# Bytes per PUT: the sender keeps about three parts in memory (workers/transfer.py RelayWriter); the web server
# writes a part to the file as it arrives.
PART = 8 << 20
STALL = 60.0  # seconds without a byte after which a reader gives up
STEP = 0.002  # seconds a reader at the end of the file waits before it looks again (one written by another process)
ROW_EVERY = 0.5  # seconds between looks at the row while the file is not there yet (is it still wanted?)
CHUNK = 1 << 20


class RelayRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def part_request(row: Transfer, content_length: str, query: dict[str, str]) -> tuple[int, int, bool]:
    """Check a part's PUT before its body is read: (offset, length, end), or RelayRefused with the reason.
    `content_length` is the header as sent, `query` the request's parameters (`offset`, `end`)."""
    job = row.job
    if job is None or job.state not in (Job.State.QUEUED, Job.State.RUNNING) or job.kind not in transfer.RELAY_KINDS:
        raise RelayRefused(409, "conflict", "this transfer's job is not waiting for it")
    length, limit = declared_length(content_length), int(settings.BERTH_MAX_DOWNLOAD_BYTES)
    raw_offset, end = query.get("offset", "0"), query.get("end", "1") == "1"
    if not (raw_offset.isascii() and raw_offset.isdigit()):
        raise RelayRefused(400, "invalid", "offset must be a number of bytes")
    offset = int(raw_offset)
    if offset + length > limit:
        raise RelayRefused(413, "too_large", "the file is larger than BERTH_MAX_DOWNLOAD_BYTES")
    return offset, length, end


def declared_length(content_length: str) -> int:
    """The length a PUT declares (a relay part's, a pushed download's), or RelayRefused: none (411), or more
    than BERTH_MAX_DOWNLOAD_BYTES (413)."""
    if not (content_length.isascii() and content_length.isdigit()):
        raise RelayRefused(411, "length_required", "send the file's length (Content-Length)")
    length, limit = int(content_length), int(settings.BERTH_MAX_DOWNLOAD_BYTES)
    if length > limit:
        raise RelayRefused(413, "too_large", f"the file is larger than {limit} bytes (BERTH_MAX_DOWNLOAD_BYTES)")
    return length


class Part:
    """One part being appended at `offset` of the relay's file: `write` its bytes as they come, `finish` once
    all `length` came (then, on the last part, `mark_whole`), `close` always."""

    def __init__(self, row: Transfer, offset: int, length: int, end: bool) -> None:
        self.row, self.offset, self.length, self.end = row, offset, length, end
        self.written = 0
        path = transfer.staged_upload(row)
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | (os.O_CREAT | os.O_EXCL if offset == 0 else 0)
        try:
            self.fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise RelayRefused(409, "conflict", "the relay has its first part already") from None
        except FileNotFoundError:
            raise RelayRefused(409, "conflict", "the relay's first part is missing") from None
        st = os.fstat(self.fd)
        if st.st_size != offset or not st.st_mode & stat.S_IWUSR:
            self.close()
            raise RelayRefused(409, "conflict", f"the relay is at byte {st.st_size}, not {offset}, or ended")

    def write(self, chunk: bytes) -> None:
        if self.written + len(chunk) > self.length:
            raise RelayRefused(400, "too_long", f"the part is longer than its {self.length} bytes")
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]
        self.written += len(chunk)

    def finish(self) -> int:
        """The part is whole (or RelayRefused); the last one makes the file read-only. Returns the file's size."""
        if self.written != self.length:
            raise RelayRefused(400, "incomplete", f"the part ended after {self.written} of {self.length} bytes")
        if self.end:
            os.fchmod(self.fd, 0o400)  # whole: a reader at its end stops there
        return self.offset + self.length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def mark_whole(row: Transfer, size: int) -> None:
    """After the last part: the row is an ordinary upload of `size` bytes (what a re-run of its job reads)."""
    Transfer.objects.filter(pk=row.pk, kind=Transfer.Kind.RELAY).update(
        kind=Transfer.Kind.UPLOAD, size=size, expires=timezone.now() + transfer.ttl())


def append_part(body, row: Transfer, offset: int, length: int, end: bool) -> int:
    """Append one part read from `body` (a file-like request) at `offset`; returns the file's size."""
    part = Part(row, offset, length, end)
    try:
        left = length
        while left:
            chunk = body.read(min(CHUNK, left))
            if not chunk:
                break
            part.write(chunk)
            left -= len(chunk)
        size = part.finish()
    finally:
        part.close()
    if end:
        mark_whole(row, size)
    return size


class GrowingFile:
    """The relay's file read as it grows (see the module docstring). Once the file is open the file itself says
    everything (no database query while data flows): read-only is whole, unlinked (consumed, dropped, swept) is
    cut. `poll` is what there is now; `read` waits for it (a file-like object for Django's streamed response)."""

    def __init__(self, row: Transfer) -> None:
        self.pk = row.pk
        self.path = transfer.staged_upload(row)
        self.fd = -1
        self.pos = 0
        self.idle_since = self.last_row = time.monotonic()

    def poll(self, n: int = CHUNK) -> bytes | None:
        """Up to `n` bytes that are there; b"" at the end (whole and all read, dropped, or stalled); None: nothing
        yet, look again (and, while `row_due()`, whether the row still exists)."""
        if self.fd < 0:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                return self._nothing()
        chunk = os.pread(self.fd, n, self.pos)
        if chunk:
            self.pos += len(chunk)
            self.idle_since = time.monotonic()
            return chunk
        st = os.fstat(self.fd)
        if (not st.st_mode & stat.S_IWUSR or st.st_nlink == 0) and self.pos >= st.st_size:
            return b""  # whole and all read, or dropped: the stream ends (cut, if dropped)
        return self._nothing()

    def _nothing(self) -> bytes | None:
        return b"" if time.monotonic() - self.idle_since >= STALL else None

    def row_due(self) -> bool:
        """Whether to ask the database if the row still exists: only before the file appeared, every ROW_EVERY."""
        now = time.monotonic()
        if self.fd >= 0 or now - self.last_row < ROW_EVERY:
            return False
        self.last_row = now
        return True

    def read(self, n: int = CHUNK) -> bytes:
        while True:
            chunk = self.poll(n)
            if chunk is not None:
                return chunk
            if self.row_due() and not row_exists(self.pk):
                return b""
            time.sleep(STEP)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def row_exists(pk) -> bool:
    """One look at the row from whatever thread asks (an ASGI server's pool, a streamed response): its connection
    is given back at once, as a request would (PostgreSQL's pool; nothing outside a test's transaction)."""
    from django.db import connection

    try:
        return Transfer.objects.filter(pk=pk).exists()
    finally:
        if not connection.in_atomic_block:
            connection.close()
