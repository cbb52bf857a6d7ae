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


def test_hand_built_lines_equal_json_dumps_and_time_prefix_cache_is_exact():
    from workers.engine.monitor.jsonlog import encode_entry

    when = "2026-11-29T01:02:03.000000001Z"
    for raw in (b"", b'a"b\\c\n', "ünï\u2028\x00\x1f".encode(), bytes(range(256)), b"\xff\xfe bad", "😀\r\n".encode()):
        text, line = encode_entry("stderr", raw, when)
        expect = json.dumps({"log": raw.decode("utf-8", "replace"), "stream": "stderr", "time": when},
                            ensure_ascii=False) + "\n"
        assert line == expect.encode() and text == raw.decode("utf-8", "replace")
    # Calls within one second, then the next: the cached prefix never goes stale.
    base = 1_795_000_000 * 1_000_000_000
    assert rfc3339_nano(base + 999_999_999) == "2026-11-18T11:06:40.999999999Z"
    assert rfc3339_nano(base + 1_000_000_000) == "2026-11-18T11:06:41.000000000Z"
    assert rfc3339_nano(base + 5) == "2026-11-18T11:06:40.000000005Z"


def test_write_lines_rotates_like_write_line(tmp_path):
    lines = [json.dumps({"log": f"line {i}\n", "stream": "stdout", "time": "t"}).encode() + b"\n" for i in range(500)]
    one, many = JsonFileLog(tmp_path / "a" / "c.log", max_size=1000, max_files=5), \
        JsonFileLog(tmp_path / "b" / "c.log", max_size=1000, max_files=5)
    for line in lines:
        one.write_line(line)
    for i in range(0, 500, 37):
        many.write_lines(lines[i:i + 37])
    one.close()
    many.close()
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 5
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "b" / name).stat().st_size <= 1000
