"""Container logs in the format of Docker's json-file driver, rotated by size.

One JSON object per line: {"log": "...\\n", "stream": "stdout"|"stderr", "time": RFC 3339 UTC
with nanoseconds}. As Docker does, a line longer than 16 KiB is cut into partial messages
(all but the last without the trailing newline), and a stream that ends without a newline
flushes what it has.
"""

from __future__ import annotations

import json
import os
import time

PARTIAL_LIMIT = 16 * 1024  # Docker's partial-message size


class LogWriteError(OSError):
    """A log write that failed part way: `rest` is what is still to be written."""

    def __init__(self, exc: OSError, rest: bytes):
        super().__init__(exc.errno, exc.strerror)
        self.rest = rest


_second: list = [None, ""]  # (unix second, its formatted prefix): strftime per line is a third of the cost


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time as 2026-11-28T21:55:01.123456789Z (always nine digits, so lines sort as text)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    if secs != _second[0]:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _second[0] = secs
    return f"{_second[1]}.{frac:09d}Z"


def _utf8_cut(buf: bytearray, limit: int) -> int:
    """A cut at most `limit` bytes in that does not split a UTF-8 character (if it can help it)."""
    cut = limit
    for _ in range(3):
        if cut > 0 and (buf[cut] & 0xC0) == 0x80:  # continuation byte: back off
            cut -= 1
        else:
            break
    return cut if (buf[cut] & 0xC0) != 0x80 else limit


class LineSplitter:
    """Cuts one output stream into log messages: whole lines, or 16 KiB pieces of long ones."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while self.buf:
            nl = self.buf.find(b"\n", 0, PARTIAL_LIMIT + 1)
            if nl != -1:
                out.append(bytes(self.buf[: nl + 1]))
                del self.buf[: nl + 1]
            elif len(self.buf) > PARTIAL_LIMIT:
                cut = _utf8_cut(self.buf, PARTIAL_LIMIT)
                out.append(bytes(self.buf[:cut]))
                del self.buf[:cut]
            else:
                break
        return out

    def flush(self) -> list[bytes]:
        """At end of stream: whatever is left, as a last partial message."""
        if not self.buf:
            return []
        rest = bytes(self.buf)
        self.buf.clear()
        return [rest]


_json_str = json.JSONEncoder(ensure_ascii=False).encode


def encode_entry(stream: str, message: bytes, when: str) -> tuple[str, bytes]:
    """(decoded text, the JSON line as bytes). Invalid UTF-8 becomes U+FFFD, as in Docker.

    The same bytes as json.dumps({"log", "stream", "time"}, ensure_ascii=False), built by hand
    (2.5x faster): only the text needs escaping; stream and time are ours."""
    text = message.decode("utf-8", "replace")
    return text, f'{{"log": {_json_str(text)}, "stream": "{stream}", "time": "{when}"}}\n'.encode()


class JsonFileLog:
    """Appends json-file lines to `path`; past `max_size` bytes the file rotates to path.1, .2, ...

    `max_files` counts the live file, as Docker's max-file does: 3 keeps container.log,
    container.log.1 and container.log.2. max_size <= 0 disables rotation.
    """

    def __init__(self, path: str | os.PathLike[str], max_size: int = 10 * 1024 * 1024, max_files: int = 3):
        self.path = os.fspath(path)
        self.max_size = int(max_size)
        self.max_files = max(1, int(max_files))
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self._fd).st_size

    def write_line(self, line: bytes) -> None:
        if self.max_size > 0 and self.size > 0 and self.size + len(line) > self.max_size:
            self.rotate()
        self._write_all(line)

    def write_lines(self, lines: list[bytes]) -> None:
        """Several lines with one write(2) per file (rotating in between as write_line would).
        A failure raises LogWriteError holding every byte not written."""
        pending: list[bytes] = []
        size = self.size
        for i, line in enumerate(lines):
            if self.max_size > 0 and size > 0 and size + len(line) > self.max_size:
                try:
                    if pending:
                        self._write_all(b"".join(pending))
                        pending = []
                    self.rotate()
                except OSError as exc:
                    done = b"" if not isinstance(exc, LogWriteError) else exc.rest
                    rest = done if done else b"".join(pending)
                    raise LogWriteError(exc, rest + b"".join(lines[i:])) from None
                size = self.size
            pending.append(line)
            size += len(line)
        if pending:
            self._write_all(b"".join(pending))

    def write_blob(self, blob: bytes) -> None:
        """Many encoded lines at once (chunklog): one write(2), unless this would cross the rotation
        size, then line by line so that every file stays within it."""
        if self.max_size > 0 and self.size + len(blob) > self.max_size:
            self.write_lines([line + b"\n" for line in blob[:-1].split(b"\n")])
            return
        self._write_all(blob)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            if self._fd < 0:
                self._open()  # a rotation whose new file could not be made
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self.size += n
        except OSError as exc:
            raise LogWriteError(exc, bytes(view)) from None

    def write(self, stream: str, message: bytes, when: str | None = None) -> str:
        """Write one message; returns its decoded text (for live sinks)."""
        text, line = encode_entry(stream, message, when or rfc3339_nano())
        self.write_line(line)
        return text

    def rotate(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        if self.max_files == 1:
            os.unlink(self.path)
        else:
            for i in range(self.max_files - 1, 1, -1):
                older = f"{self.path}.{i - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i}")
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
