"""The json-file writer on its own: message cutting, time format, rotation (no containers)."""

from __future__ import annotations

import json
import re

from workers.engine.monitor.jsonlog import PARTIAL_LIMIT, JsonFileLog, LineSplitter, rfc3339_nano


def test_time_is_rfc3339_utc_with_nanoseconds():
    assert rfc3339_nano(1_764_366_901_123_456_789) == "2025-11-28T21:55:01.123456789Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", rfc3339_nano())


def test_splitter_keeps_lines_whole_across_reads_and_cuts_long_ones():
    s = LineSplitter()
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde") == [b"abc\n"]
    assert s.feed(b"\n") == [b"de\n"]
    long = b"y" * (PARTIAL_LIMIT * 2 + 10)
    assert s.feed(long) == [b"y" * PARTIAL_LIMIT, b"y" * PARTIAL_LIMIT]
    assert s.feed(b"\n") == [b"y" * 10 + b"\n"]
    assert s.feed(b"tail") == [] and s.flush() == [b"tail"] and s.flush() == []


def test_splitter_does_not_cut_a_utf8_character():
    s = LineSplitter()
    data = b"a" * (PARTIAL_LIMIT - 1) + "é".encode() + b"z"  # é straddles the 16 KiB boundary
    first, = s.feed(data)
    assert len(first) == PARTIAL_LIMIT - 1 and s.flush() == ["é".encode() + b"z"]


def test_rotation_keeps_max_files_and_never_exceeds_max_size(tmp_path):
    log = JsonFileLog(tmp_path / "c.log", max_size=1000, max_files=3)
    for i in range(100):
        log.write("stdout", f"message {i}\n".encode())
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.log", "c.log.1", "c.log.2"]
    assert all((tmp_path / n).stat().st_size <= 1000 for n in names)
    last = [json.loads(x) for x in (tmp_path / "c.log").read_text().splitlines()][-1]
    assert last["log"] == "message 99\n" and last["stream"] == "stdout"


def test_one_file_means_truncate_and_invalid_utf8_is_replaced(tmp_path):
    log = JsonFileLog(tmp_path / "c.log", max_size=200, max_files=1)
    for i in range(20):
        log.write("stderr", b"\xff bad bytes " + str(i).encode() + b"\n")
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log"]
    entries = [json.loads(x) for x in (tmp_path / "c.log").read_text().splitlines()]
    assert entries[-1]["log"] == "\ufffd bad bytes 19\n"
