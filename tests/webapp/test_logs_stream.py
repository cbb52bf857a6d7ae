"""Container logs from the capped Redis stream: logstream helpers against the real redis-server, and
the /ws/containers/<pk>/logs/ consumer through webapp.asgi with the real Redis channel layer.

Lines are XADDed here the way the host's monitor does (same key, fields and cap); the end-to-end
test with a real container and monitor is tests/e2e/test_e2e_logs.py."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from containers import consumers_logs, logstream
from containers.models import Container, Host, Team, TeamMembership
from webapp.asgi import application
from workers.engine.monitor.redis_sink import STREAM_MAXLEN

pytestmark = pytest.mark.timeout(120)  # a hang fails here, not after the suite's 300 s


def new_engine_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


def write(url: str, engine_id: str, lines: list[tuple[str, str]], *, atomic: bool = False) -> list[str]:
    """XADD like the monitor's sink: one pipeline, capped stream. Returns the entry ids. `atomic`: in one
    MULTI/EXEC, so a reader sees none of the lines or all of them."""
    r = redis.Redis.from_url(url, decode_responses=True)
    pipe = r.pipeline(transaction=atomic)
    for i, (stream, text) in enumerate(lines):
        pipe.xadd(logstream.stream_key(engine_id),
                  {"stream": stream, "time": f"2026-11-29T01:00:00.{i:09d}Z", "log": text},
                  maxlen=STREAM_MAXLEN, approximate=True)
    ids = pipe.execute()
    r.close()
    return ids


@pytest.fixture
def stream(live_redis):
    """A fresh engine id whose stream is deleted at the end."""
    engine_id = new_engine_id()
    yield engine_id
    r = redis.Redis.from_url(live_redis)
    r.delete(logstream.stream_key(engine_id))
    r.close()


# --- logstream ---------------------------------------------------------------------------------------

def test_tail_and_since(live_redis, stream):
    assert logstream.tail(stream, 5) == []
    ids = write(live_redis, stream, [("stdout", f"line {i}\n") for i in range(10)] + [("stderr", "oops\n")])
    last3 = logstream.tail(stream, 3)
    assert [e["log"] for e in last3] == ["line 8\n", "line 9\n", "oops\n"]
    assert [e["stream"] for e in last3] == ["stdout", "stdout", "stderr"]
    assert [e["id"] for e in last3] == ids[-3:]
    assert set(last3[0]) == {"id", "stream", "time", "log"}
    assert logstream.tail(stream, 0) == []
    assert len(logstream.tail(stream, 1000)) == 11
    after = logstream.since(stream, ids[7])
    assert [e["id"] for e in after] == ids[8:]
    assert [e["log"] for e in logstream.since(stream, ids[7], count=1)] == ["line 8\n"]
    assert len(logstream.since(stream, "0")) == 11
    assert logstream.since(stream, ids[-1]) == []
    with pytest.raises(ValueError, match="not a stream entry id"):
        logstream.since(stream, "1; FLUSHALL")


async def test_follow_yields_new_lines_in_order_and_idles_with_empty_lists(live_redis, stream):
    write(live_redis, stream, [("stdout", "old\n")])
    gen = logstream.follow(stream, block_ms=200)
    got: list[tuple[str, dict]] = []
    first = await gen.__anext__()  # nothing new yet: an empty list after block_ms
    assert first == []
    await sync_to_async(write)(live_redis, stream, [("stdout", "a\n"), ("stderr", "b\n"), ("stdout", "c\n")])
    while len(got) < 3:
        got += await asyncio.wait_for(gen.__anext__(), 10)
    await gen.aclose()
    assert [(f["stream"], f["log"]) for _, f in got] == [("stdout", "a\n"), ("stderr", "b\n"), ("stdout", "c\n")]
    # From an explicit id: everything after it, old lines included.
    gen = logstream.follow(stream, last_id="0", block_ms=200)
    assert [f["log"] for _, f in await asyncio.wait_for(gen.__anext__(), 10)] == ["old\n", "a\n", "b\n", "c\n"]
    await gen.aclose()


async def test_reader_counts_unread_and_skips_with_an_exact_dropped_count(live_redis, stream):
    reader = logstream.StreamReader(stream)
    try:
        assert await reader.start(10) == [] and await reader.backlog() == 0  # no stream yet
        await sync_to_async(write)(live_redis, stream, [("stdout", f"{i}\n") for i in range(50)])
        assert await reader.backlog() == 50
        assert [e["log"] for e in await reader.read(5)] == [f"{i}\n" for i in range(5)]
        assert await reader.backlog() == 45
        lines, dropped = await reader.skip_to_latest(10)
        assert [e["log"] for e in lines] == [f"{i}\n" for i in range(40, 50)] and dropped == 35
        assert await reader.backlog() == 0
        # More than the cap arrives unread: trimmed entries count as dropped too.
        total = STREAM_MAXLEN * 2
        await sync_to_async(write)(live_redis, stream, [("stdout", f"n{i}\n") for i in range(total)])
        lines, dropped = await reader.skip_to_latest(100)
        assert len(lines) == 100 and lines[-1]["log"] == f"n{total - 1}\n"
        assert dropped + len(lines) == total
        # Fewer unread than asked for: only the unread ones, nothing dropped.
        await sync_to_async(write)(live_redis, stream, [("stdout", "x\n"), ("stdout", "y\n")])
        lines, dropped = await reader.skip_to_latest(100)
        assert [e["log"] for e in lines] == ["x\n", "y\n"] and dropped == 0
    finally:
        await reader.close()


def test_tail_parameter():
    assert consumers_logs.parse_tail(b"") == consumers_logs.DEFAULT_TAIL
    assert consumers_logs.parse_tail(b"tail=0") == 0
    assert consumers_logs.parse_tail(b"tail=5000") == 5000
    for bad in (b"tail=-1", b"tail=abc", b"tail=5001", b"tail=1e3"):
        with pytest.raises(ValueError, match="tail must be a whole number"):
            consumers_logs.parse_tail(bad)


# --- the consumer ------------------------------------------------------------------------------------

def make_user(name: str):
    return get_user_model().objects.create_user(name, password=f"pw-{name}-123")


def headers_for(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://127.0.0.1")]


@sync_to_async
def setup_world(engine_id: str) -> dict:
    """alice owns a container in team A (bob: viewer in A); carol is in team B with her own."""
    host = Host.objects.create(name=f"h-{uuid.uuid4().hex[:6]}")
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    team_a, team_b = Team.objects.create(name="A"), Team.objects.create(name="B")
    TeamMembership.objects.create(team=team_a, user=alice, role="admin")
    TeamMembership.objects.create(team=team_a, user=bob, role="viewer")
    TeamMembership.objects.create(team=team_b, user=carol, role="admin")
    mine = Container.objects.create(name="web", host=host, owner=alice, team=team_a, engine_id=engine_id,
                                    state="running")
    theirs = Container.objects.create(name="db", host=host, owner=carol, team=team_b, state="running")
    return {"alice": headers_for(alice), "bob": headers_for(bob), "carol": headers_for(carol),
            "mine": mine.pk, "theirs": theirs.pk}


async def connect(pk: int, headers, query: str = "") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/containers/{pk}/logs/{query}", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def close_code(comm: WebsocketCommunicator) -> int:
    while True:
        out = await comm.receive_output(timeout=10)
        if out["type"] == "websocket.close":
            await comm.disconnect()  # let the consumer instance finish inside this test's loop
            return out["code"]


async def receive_lines(comm: WebsocketCommunicator, want: int, timeout: float = 30) -> list[dict]:
    """Messages until `want` lines (sent + dropped) have been accounted for."""
    msgs, seen = [], 0
    while seen < want:
        msg = json.loads(await comm.receive_from(timeout=timeout))
        assert msg["type"] == "lines", msg
        msgs.append(msg)
        seen += len(msg["lines"]) + msg["dropped"]
    return msgs


@pytest.mark.django_db(transaction=True)
async def test_tail_then_live_lines_in_order_with_streams_told_apart(live_redis, stream):
    world = await setup_world(stream)
    await sync_to_async(write)(live_redis, stream, [("stdout", f"old {i}\n") for i in range(10)])
    comm = await connect(world["mine"], world["alice"], "?tail=4")
    replay = json.loads(await comm.receive_from(timeout=10))
    assert replay["type"] == "lines" and replay["tail"] is True
    assert [line["log"] for line in replay["lines"]] == [f"old {i}\n" for i in range(6, 10)]
    live = [("stdout", "one\n"), ("stderr", "\x1b[31mtwo\x1b[0m <b>\n"), ("stdout", "three\n")]
    await sync_to_async(write)(live_redis, stream, live)
    msgs = await receive_lines(comm, 3)
    got = [(line["stream"], line["log"]) for m in msgs for line in m["lines"]]
    assert got == live  # raw text: escaping and colours are the browser's job
    assert all(m["dropped"] == 0 and m["mode"] in ("live", "batched") and not m["tail"] for m in msgs)
    ids = [line["id"] for m in msgs for line in m["lines"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=10) == {"type": "pong"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_empty_stream_tells_the_replay_is_over(live_redis, stream):
    world = await setup_world(stream)
    comm = await connect(world["mine"], world["alice"])
    first = json.loads(await comm.receive_from(timeout=10))
    assert first == {"type": "lines", "lines": [], "dropped": 0, "mode": "live", "rate": 0, "tail": True}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_who_may_read_the_logs(live_redis, stream):
    world = await setup_world(stream)
    comm = await connect(world["mine"], [(b"origin", b"http://127.0.0.1")])  # no session cookie
    assert await close_code(comm) == 4401
    # Another team's container, found by guessing its id: as if it did not exist.
    comm = await connect(world["theirs"], world["alice"])
    assert await close_code(comm) == 4404
    comm = await connect(999999, world["alice"])
    assert await close_code(comm) == 4404
    # A viewer in the team sees the container but logs are operator-level (iface §4).
    comm = await connect(world["mine"], world["bob"])
    assert await close_code(comm) == 4403
    comm = await connect(world["mine"], world["alice"], "?tail=lots")
    error = json.loads(await comm.receive_from(timeout=10))
    assert error["type"] == "error" and "tail must be a whole number" in error["message"]
    assert await close_code(comm) == 4400


def followers(url: str, engine_id: str) -> int:
    """Connections of the consumer's readers for this stream, seen from the Redis server."""
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        name = logstream.reader_client_name(engine_id)
        return sum(1 for c in r.client_list() if c.get("name") == name)
    finally:
        r.close()


@pytest.mark.django_db(transaction=True)
async def test_flood_switches_to_sampled_mode_and_accounts_for_every_line(live_redis, stream):
    world = await setup_world(stream)
    comm = await connect(world["mine"], world["alice"], "?tail=0")
    assert json.loads(await comm.receive_from(timeout=10))["tail"] is True
    assert await sync_to_async(followers)(live_redis, stream) == 1
    total = 30_000
    # Atomic: whatever the reader takes at its first tick (at most MAX_PER_TICK), the rest is waiting at the
    # next one, so the switch to sampled mode cannot depend on how fast this machine writes.
    await sync_to_async(write)(live_redis, stream, [("stdout", f"flood {i}\n") for i in range(total)], atomic=True)
    msgs = await receive_lines(comm, total, timeout=60)
    sent = [line for m in msgs for line in m["lines"]]
    dropped = sum(m["dropped"] for m in msgs)
    assert len(sent) + dropped == total  # every line is either shown or counted as left out
    assert dropped > 0 and any(m["mode"] == "sampled" for m in msgs)
    assert all(len(m["lines"]) <= consumers_logs.SAMPLE_PER_TICK for m in msgs if m["mode"] == "sampled")
    assert sent[-1]["log"] == f"flood {total - 1}\n"  # the newest line is never the one dropped
    numbers = [int(line["log"].split()[1]) for line in sent]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    # When the flood stops, the view says it is live again.
    while True:
        msg = json.loads(await comm.receive_from(timeout=30))
        if msg["mode"] == "live":
            assert msg["lines"] == [] and msg["dropped"] == 0
            break
    await comm.disconnect()
    # The reader's connection to Redis is gone with the socket: nothing keeps following.
    assert await sync_to_async(followers)(live_redis, stream) == 0


@pytest.mark.django_db(transaction=True)
async def test_losing_the_role_while_following_closes_the_socket(live_redis, stream, monkeypatch):
    monkeypatch.setattr(consumers_logs, "RECHECK", 0.2)
    world = await setup_world(stream)
    bob = await sync_to_async(get_user_model().objects.get)(username="bob")
    await sync_to_async(TeamMembership.objects.filter(user=bob).update)(role="operator")
    comm = await connect(world["mine"], world["bob"])  # operators may read the logs
    assert json.loads(await comm.receive_from(timeout=10))["tail"] is True
    await sync_to_async(TeamMembership.objects.filter(user=bob).update)(role="viewer")
    await sync_to_async(write)(live_redis, stream, [("stdout", "keeps it looping\n")])
    assert await close_code(comm) == 4403


# --- the monitor's sink that feeds the stream ----------------------------------------------------------

def test_monitor_sink_appends_every_line_in_order_per_container(redis_url):
    from workers.engine.monitor.redis_sink import BATCH, RedisStreamSink

    a, b = new_engine_id(), new_engine_id()
    sink = RedisStreamSink(redis_url)
    n = BATCH * 2 + 7  # more than one EVAL per stream
    for i in range(n):
        sink.add(a, "stdout" if i % 3 else "stderr", f"2026-11-29T01:00:00.{i:09d}Z", f"a{i} ünï \x1b[1m\n")
        if i % 2:
            sink.add(b, "stdout", "t", f"b{i}\n")
    sink.flush()
    deadline = time.monotonic() + 30
    while sink.busy():  # until Redis has answered every batch (one more flush reads the replies)
        assert time.monotonic() < deadline, "Redis never answered the sink's batches"
        sink.flush()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        got = [f for _, f in r.xrange(logstream.stream_key(a))]
        assert [f["log"] for f in got] == [f"a{i} ünï \x1b[1m\n" for i in range(n)]
        assert got[3] == {"stream": "stderr", "time": "2026-11-29T01:00:00.000000003Z", "log": "a3 ünï \x1b[1m\n"}
        assert [f["log"] for _, f in r.xrange(logstream.stream_key(b))] == [f"b{i}\n" for i in range(1, n, 2)]
    finally:
        r.delete(logstream.stream_key(a), logstream.stream_key(b))
        r.close()


def test_monitor_sink_survives_redis_being_away(capfd):
    from tests.support import dead_port
    from workers.engine.monitor.redis_sink import RedisStreamSink

    with dead_port() as port:
        sink = RedisStreamSink(f"redis://127.0.0.1:{port}/0")  # nothing listens there
        sink.add("c", "stdout", "t", "lost from the stream, not from disk\n")
        sink.flush()  # no exception: the monitor goes on writing the file
        assert "redis sink" in capfd.readouterr().err
        sink.add("c", "stdout", "t", "while away\n")
        assert sink._pending == []  # not buffered without bound while Redis is away


@pytest.mark.django_db(transaction=True)
async def test_redis_away_says_so_and_closes(live_redis, stream, settings):
    from tests.support import dead_port

    world = await setup_world(stream)
    with dead_port() as port:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"  # the stream's Redis is away; the layer's is not
        comm = await connect(world["mine"], world["alice"])
        msg = json.loads(await comm.receive_from(timeout=20))
        assert msg["type"] == "error" and "download the full log" in msg["message"]
        assert await close_code(comm) == 1011


@pytest.mark.django_db(transaction=True)
async def test_following_needs_no_channel_layer(live_redis, stream, settings):
    """The log socket takes nothing by group: with the channel layer's Redis away (the stream's is here) it
    still replays and follows. A consumer on the layer would run a BZPOPMIN loop per socket and fail here."""
    from tests.support import dead_port

    world = await setup_world(stream)
    await sync_to_async(write)(live_redis, stream, [("stdout", "before\n")])
    with dead_port() as port:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0"}]}}}
        comm = await connect(world["mine"], world["alice"])
        replay = json.loads(await comm.receive_from(timeout=10))
        assert [line["log"] for line in replay["lines"]] == ["before\n"]
        await sync_to_async(write)(live_redis, stream, [("stdout", "after\n")])
        msgs = await receive_lines(comm, 1)
        assert [line["log"] for m in msgs for line in m["lines"]] == ["after\n"]
        await comm.disconnect()
