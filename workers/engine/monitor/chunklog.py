"""json-file lines for a whole read at once: the flood path.

A container that writes as fast as it can hands the monitor ~1,000 lines per read. Encoding them one
by one in Python (a dict, json, a timestamp each) held a flood to a fraction of conmon's rate. Here a
read's complete lines become their json-file lines with a few bytes operations over the whole chunk
(C speed): escape the chunk once, then turn every newline into the end of one entry and the start of
the next. All lines of one read carry the time of that read (they were read at the same instant).

The output is what `jsonlog.encode_entry` writes, entry for entry (checked by tests); anything this
path does not handle (invalid UTF-8, a line longer than Docker's 16 KiB partial limit) returns None
and goes the careful per-message way.
"""

from __future__ import annotations

import re

from workers.engine.monitor.jsonlog import PARTIAL_LIMIT

_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")
_CONTROL_BYTES = bytes(b for b in range(32) if b != 0x0A)
# json.dumps' escapes: the short ones, else \u00XX (lower-case hex)
_SHORT = {0x08: b"\\b", 0x09: b"\\t", 0x0C: b"\\f", 0x0D: b"\\r"}


def _escape(chunk: bytes) -> bytes | None:
    """JSON string escaping of chunk (its newlines left alone); None if it is not valid UTF-8."""
    # bytes methods, not re: re scans ~20x slower than isascii/translate/`in` over a 64 KiB read
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if b"\\" in chunk:
        chunk = chunk.replace(b"\\", b"\\\\")
    if b'"' in chunk:
        chunk = chunk.replace(b'"', b'\\"')
    if len(chunk.translate(None, _CONTROL_BYTES)) != len(chunk):
        for ch in set(_CONTROL.findall(chunk)):
            chunk = chunk.replace(ch, _SHORT.get(ch[0], b"\\u%04x" % ch[0]))
    return chunk


def encode_chunk(stream: str, whole: bytes, when: str) -> bytes | None:
    """json-file lines for `whole`, complete lines each ending in a newline; None: use the careful way."""
    if not whole:
        return b""
    body = _escape(whole[:-1])
    if body is None:
        return None
    end = f'\\n", "stream": "{stream}", "time": "{when}"}}\n'.encode()
    return b'{"log": "' + body.replace(b"\n", end + b'{"log": "') + end


def split_whole(buf: bytearray, data: bytes) -> bytes | None:
    """Append data to the stream's carry-over `buf` and take out its complete lines (as one bytes,
    ending in a newline; b"" if there is none yet). None (buf then holds everything) when a line is
    longer than the partial limit: the caller cuts it into partial messages the careful way."""
    if buf:
        buf += data
        data = bytes(buf)
        buf.clear()
    cut = data.rfind(b"\n") + 1
    if len(data) - cut > PARTIAL_LIMIT or (cut and _longest_line(data, cut) > PARTIAL_LIMIT):
        buf += data
        return None
    buf += data[cut:]
    return data[:cut]


def _longest_line(data: bytes, end: int) -> int:
    """At most PARTIAL_LIMIT when every aligned half-limit block holds a newline (a longer line would
    cover one whole block): a few memchr calls; the exact length only when that does not tell."""
    if end <= PARTIAL_LIMIT + 1:
        return end - 1
    step = PARTIAL_LIMIT // 2
    if all(data.find(b"\n", k, k + step) != -1 for k in range(0, end - step, step)):
        return PARTIAL_LIMIT
    return max(map(len, data[:end - 1].split(b"\n")))
