"""The live view follows the disk and samples a flood, saying so; it never asks the container to wait."""

from __future__ import annotations

import redis

from workers.engine.monitor.redis_sink import SAMPLE_TAIL, RedisStreamSink, skipped_key, stream_key


def _entries(url: str, cid: str) -> list[dict]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _, fields in r.xrange(stream_key(cid))]
    finally:
        r.delete(stream_key(cid))


def _skipped(url: str, cid: str) -> int:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        return int(r.get(skipped_key(cid)) or 0)
    finally:
        r.delete(skipped_key(cid))


def test_a_flood_is_sampled_and_counted_and_a_trickle_is_not(redis_server):
    sink = RedisStreamSink(redis_server.url)
    flood = b"".join(b"line-%d\n" % i for i in range(20000))
    sink.add_chunk("flood", "stdout", "t1", flood)
    sink.add_chunk("flood", "stdout", "t2", b"after\n")  # within the budget again: sent as is
    sink.add_chunk("calm", "stderr", "t3", b"one\ntwo\n")
    sink.flush()
    sink.flush()  # reads the replies of the batch in flight
    got = _entries(redis_server.url, "flood")
    # Every line is in the stream or counted beside it (the live view says exactly how many it lacks).
    assert _skipped(redis_server.url, "flood") == 20000 - SAMPLE_TAIL and _skipped(redis_server.url, "calm") == 0
    assert [e["log"] for e in got] == [f"line-{i}\n" for i in range(20000 - SAMPLE_TAIL, 20000)] + ["after\n"]
    assert [(e["stream"], e["log"]) for e in _entries(redis_server.url, "calm")] == [("stderr", "one\n"),
                                                                                      ("stderr", "two\n")]
