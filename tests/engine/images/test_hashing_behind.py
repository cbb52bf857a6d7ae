"""HashingReader with `behind` (the hash and the tee in a thread of their own while the caller unpacks what it
read, as a move's receive does with a layer): the same digest and copy, its failures raised to the reader, no
thread left behind."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from workers.engine.images.fsutil import CHUNK, HashingReader


def test_behind_hashes_and_tees_what_was_read_in_order():
    data = os.urandom(5 * CHUNK + 123)
    tee = io.BytesIO()
    reader = HashingReader(io.BytesIO(data), tee=tee, behind=True)
    got = b"".join(iter(lambda: reader.read(CHUNK // 3), b""))
    reader.drain()
    assert got == data and tee.getvalue() == data and reader.count == len(data)
    assert reader.digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_failing_tee_is_raised_to_the_reader_and_leaves_no_thread():
    class Full(io.RawIOBase):
        def write(self, b):
            raise OSError(28, "No space left on device")

    before = threading.active_count()
    reader = HashingReader(io.BytesIO(b"x" * (20 * CHUNK)), tee=Full(), behind=True)
    with pytest.raises(OSError, match="No space left"):
        reader.drain()
    reader.abandon()
    assert threading.active_count() == before


def test_an_abandoned_reader_stops_its_thread():
    before = threading.active_count()
    reader = HashingReader(io.BytesIO(b"y" * (3 * CHUNK)), tee=io.BytesIO(), behind=True)
    reader.read(CHUNK)
    reader.abandon()
    assert threading.active_count() == before
