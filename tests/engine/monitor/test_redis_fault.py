"""redis-server killed while a container logs: the log on disk misses nothing, and the live view is fed
again once Redis is back (the sink retries; it never holds the monitor up meanwhile)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import redis

from tests.conftest import REDIS_SERVER, free_port
from workers.engine.monitor.redis_sink import stream_key

pytestmark = pytest.mark.root


def _until(predicate, what: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def _redis(port: int, workdir) -> subprocess.Popen:
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)

    def up():
        try:
            return client.info("server").get("process_id") == proc.pid
        except redis.RedisError:
            assert proc.poll() is None, "redis-server exited"
            return False

    _until(up, "redis-server answers", 30)
    return proc


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.parametrize("monitor", ["berth"], indirect=True)
def test_redis_killed_during_a_follow_then_back(monitor, bundle, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis(port, tmp_path)
    try:
        script = "i=0; while true; do echo tick-$i; i=$((i+1)); usleep 20000; done"
        monitor.start("rf", bundle(["sh", "-c", script], overlay=False), log_redis_url=url)
        r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
        _until(lambda: r.xlen(stream_key("rf")) >= 5, "first lines live")
        _kill(server)  # a crash, while lines keep coming
        logged = monitor.root / "containers" / "rf" / "logs" / "container.log"

        def ticks():
            return [json.loads(x)["log"] for x in logged.read_text().split("\n")[:-1]]

        mark = len(ticks())
        _until(lambda: len(ticks()) >= mark + 20, "lines on disk while Redis is away")
        assert monitor.client.status("rf")["status"] == "running"
        server = _redis(port, tmp_path)  # back, empty (no persistence): whatever arrives is new
        r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
        first_live = _until(lambda: r.xrange(stream_key("rf"), count=1), "the live view fed again", 60)
        assert int(first_live[0][1]["log"].split("-")[1]) > mark
        got = ticks()
        assert got == [f"tick-{i}\n" for i in range(len(got))]  # nothing lost on disk, in order
    finally:
        monitor.runtime_call("kill", "rf", "KILL", check=False)
        _kill(server)
