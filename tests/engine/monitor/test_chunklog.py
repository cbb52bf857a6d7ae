"""The flood path's encoding is the careful path's, entry for entry; what it cannot do it refuses."""

from __future__ import annotations

import json
import random

from workers.engine.monitor.chunklog import encode_chunk, split_whole
from workers.engine.monitor.jsonlog import PARTIAL_LIMIT, LineSplitter, encode_entry

ALPHABET = [b"a", b"Z", b" ", b'"', b"\\", b"\t", b"\r", b"\x1b", b"\x00", b"\x08", b"\x0c", b"\x7f",
            "é".encode(), "€".encode(), "😀".encode(), b"{", b"}", b"/", b"u"]


def _careful(stream: str, whole: bytes, when: str) -> bytes:
    return b"".join(encode_entry(stream, line + b"\n", when)[1] for line in whole[:-1].split(b"\n"))


def test_same_bytes_as_the_per_message_encoder():
    rng = random.Random(16)
    for _ in range(500):
        lines = [b"".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 40))) for _ in range(rng.randrange(1, 30))]
        whole = b"\n".join(lines) + b"\n"
        blob = encode_chunk("stderr", whole, "2026-12-04T00:00:00.000000001Z")
        assert blob == _careful("stderr", whole, "2026-12-04T00:00:00.000000001Z")
        assert [json.loads(x)["log"].encode() for x in blob.splitlines()] == [x + b"\n" for x in lines]


def test_invalid_utf8_goes_the_careful_way():
    assert encode_chunk("stdout", b"ok\n\xff\xfe\n", "t") is None


def test_split_whole_keeps_the_unfinished_line_and_refuses_long_ones():
    buf = bytearray()
    assert split_whole(buf, b"one\ntw") == b"one\n" and buf == b"tw"
    assert split_whole(buf, b"o\nthree") == b"two\n" and buf == b"three"
    assert split_whole(buf, b"") == b"" and buf == b"three"
    long = b"x" * (PARTIAL_LIMIT + 1)
    assert split_whole(buf, b"\n" + long + b"\nend\n") is None
    # then the careful splitter cuts it as Docker does, from the same buffer
    s = LineSplitter()
    s.buf = buf
    assert s.feed(b"") == [b"three\n", b"x" * PARTIAL_LIMIT, b"x\n", b"end\n"]
    assert split_whole(bytearray(), b"x" * PARTIAL_LIMIT + b"\n") == b"x" * PARTIAL_LIMIT + b"\n"


def test_a_long_line_inside_a_big_read_is_found():
    short = b"".join(b"line %05d\n" % i for i in range(20000))  # 200 KB of short lines
    for at in (0, 1, 4096, len(short) // 2, len(short) - 1):
        cut = short.rfind(b"\n", 0, at) + 1
        data = short[:cut] + b"y" * (PARTIAL_LIMIT + 1) + b"\n" + short[cut:]
        assert split_whole(bytearray(), data) is None, at
    exact = (b"z" * PARTIAL_LIMIT + b"\n") * 8  # lines exactly at the limit are whole lines
    assert split_whole(bytearray(), exact) == exact
