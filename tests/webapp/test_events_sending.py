"""Events from synchronous code (a worker's job, a sync view) go out through one event loop per process, whose
Redis connections stay open: not a thread, a loop and a connection per event. Against a real redis-server of
this test's own, restarted in the middle."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from containers import events
from containers.management.commands.berth_run import free_port


def _start(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail("redis-server did not come up")
            time.sleep(0.05)


@pytest.fixture
def own_redis(settings) -> Iterator[tuple[int, list[subprocess.Popen]]]:
    port = free_port()
    procs = [_start(port)]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0"}]}}}
    try:
        yield port, procs
    finally:
        for p in procs:  # by pid, as every test does
            if p.poll() is None:
                p.kill()
            p.wait()


def _received(layer, channel: str, n: int) -> list[int]:
    async def take() -> list[int]:
        return [(await layer.receive(channel))["event"]["id"] for _ in range(n)]

    return async_to_sync(take)()


def test_events_share_one_connection_and_go_on_after_redis_restarts(own_redis):
    port, procs = own_redis
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.GROUP, channel)
    stats = redis.Redis(port=port)
    before = stats.info("stats")["total_connections_received"]
    for i in range(20):
        events.publish({"type": "job", "id": i})
    assert _received(layer, channel, 20) == list(range(20))
    opened = stats.info("stats")["total_connections_received"] - before
    assert opened <= 3, f"{opened} connections for 20 events (async_to_sync opened one an event)"

    procs[0].kill()
    procs[0].wait()
    t = time.monotonic()
    events.publish({"type": "job", "id": 100})  # lost, and says so in the log; never raises nor hangs
    assert time.monotonic() - t < events.SEND_TIMEOUT + 1

    procs.append(_start(port))  # back, empty: the group is gone with the old server
    async_to_sync(layer.group_add)(events.GROUP, channel)
    events.publish({"type": "job", "id": 101})
    assert _received(layer, channel, 1) == [101]
