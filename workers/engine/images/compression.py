"""Layer compression: detect gzip / zstd / plain by magic bytes and decompress as a stream."""

from __future__ import annotations

import zlib
from typing import BinaryIO

import zstandard

from .errors import CorruptArchive
from .fsutil import read_full

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TAR_GZIP = MEDIA_TAR + "+gzip"
MEDIA_TAR_ZSTD = MEDIA_TAR + "+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


class _Prefixed:
    """Give back bytes already peeked before reading on from the underlying stream."""

    def __init__(self, prefix: bytes, raw: BinaryIO):
        self.prefix = prefix
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n is None or n < 0 or n >= len(self.prefix):
                out, self.prefix = self.prefix, b""
                rest = self.raw.read(-1 if n is None or n < 0 else n - len(out))
                return out + rest
            out, self.prefix = self.prefix[:n], self.prefix[n:]
            return out
        return self.raw.read(n)

    def readable(self) -> bool:
        return True


def detect(raw: BinaryIO) -> tuple[str, BinaryIO]:
    """Peek at the magic bytes: ('gzip'|'zstd'|'plain', a stream that still starts at byte 0)."""
    head = read_full(raw, 4)
    stream = _Prefixed(head, raw)
    if head.startswith(GZIP_MAGIC):
        return "gzip", stream
    if head == ZSTD_MAGIC:
        return "zstd", stream
    return "plain", stream


def decompressed(raw: BinaryIO, what: str = "archive") -> tuple[str, BinaryIO]:
    """A plain byte stream of `raw`, whatever its compression, and the compression's name."""
    kind, stream = detect(raw)
    if kind == "gzip":
        return kind, _GzipReader(stream, what)
    if kind == "zstd":
        return kind, _ZstdReader(stream, what)
    return kind, stream


class _GzipReader:
    """Gzip inflated by zlib in one pass: wbits 31 checks the header, CRC-32 and length in C while it inflates,
    where the gzip module runs a second CRC pass over every byte. Members back to back and zero padding after
    the last are read as gzip(1) reads them; a member cut short, a bad CRC or garbage is a CorruptArchive.
    Each call's output is bounded, so a bomb costs no memory."""

    BLOCK = 1 << 20

    def __init__(self, raw: BinaryIO, what: str):
        self.raw, self.what = raw, what
        self.obj = zlib.decompressobj(31)
        self.feed = b""  # compressed bytes read but not yet given to zlib
        self.extra = b""  # output beyond what the last read asked for
        self.done = False

    def _next_member(self) -> bool:
        """After a member's end: start the next one, or say the stream is over (only zeros may follow)."""
        rest = self.obj.unused_data.lstrip(b"\0")
        while not rest:
            more = self.raw.read(self.BLOCK)
            if not more:
                self.done = True
                return False
            rest = more.lstrip(b"\0")
        self.obj, self.feed = zlib.decompressobj(31), rest
        return True

    def read(self, n: int = -1) -> bytes:
        want = self.BLOCK if n is None or n < 0 else n
        parts, have = [], 0
        if self.extra:
            parts.append(self.extra[:want])
            self.extra = self.extra[want:]
            have = len(parts[0])
        while have < want and not self.done:
            if self.obj.eof:
                if not self._next_member():
                    break
            data = self.feed or self.obj.unconsumed_tail
            if not data:
                data = self.raw.read(self.BLOCK)
                if not data:  # the input ends: whatever zlib still holds, and the member must be whole
                    try:
                        out = self.obj.flush()
                    except zlib.error as e:
                        raise CorruptArchive(f"corrupt gzip stream ({e})", self.what) from None
                    if not self.obj.eof:
                        raise CorruptArchive("truncated gzip stream (member cut short)", self.what)
                    parts.append(out)
                    have += len(out)
                    continue
            try:
                out = self.obj.decompress(data, want - have)
            except zlib.error as e:
                raise CorruptArchive(f"corrupt gzip stream ({e})", self.what) from None
            self.feed = b""
            parts.append(out)
            have += len(out)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) > want:
            data, self.extra = data[:want], data[want:] + self.extra
        return data

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """Multi-frame zstd decoding that, unlike zstandard's stream_reader, reports a frame cut short."""

    def __init__(self, raw: BinaryIO, what: str):
        self.raw = raw
        self.what = what
        self.dctx = zstandard.ZstdDecompressor()
        self.obj = self.dctx.decompressobj()
        self.buf = b""
        self.done = False
        self.in_frame = False

    def _fill(self) -> None:
        chunk = self.raw.read(1 << 20)
        if not chunk:
            if self.in_frame:
                raise CorruptArchive("truncated zstd stream (frame cut short)", self.what)
            self.done = True
            return
        while chunk:
            self.in_frame = True
            try:
                self.buf += self.obj.decompress(chunk)
            except zstandard.ZstdError as e:
                raise CorruptArchive(f"corrupt zstd stream ({e})", self.what) from None
            if self.obj.eof:
                chunk = self.obj.unused_data
                self.obj = self.dctx.decompressobj()
                self.in_frame = False
            else:
                chunk = b""

    def read(self, n: int = -1) -> bytes:
        want = (1 << 20) if n is None or n < 0 else n
        while len(self.buf) < want and not self.done:
            self._fill()
        out, self.buf = self.buf[:want], self.buf[want:]
        return out

    def readable(self) -> bool:
        return True


def media_type(kind: str) -> str:
    return {"gzip": MEDIA_TAR_GZIP, "zstd": MEDIA_TAR_ZSTD}.get(kind, MEDIA_TAR)
