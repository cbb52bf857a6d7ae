"""The host's stats sampler at scale (issue 16): an idle container costs one counter read a tick, a busy one is
read in full, and the sampler's interval stretches to keep it within its CPU budget."""

from __future__ import annotations

import pytest
import redis

from workers.engine.containers import ContainerManager
from workers.engine.containers.stats_history import StatsSampler, latest

pytestmark = pytest.mark.root


def test_the_interval_stretches_to_stay_within_the_cpu_budget():
    sampler = StatsSampler(None, "redis://127.0.0.1:1/0", interval=2.0, budget=0.005)
    assert sampler.next_wait(0.001) == 2.0  # cheap ticks: the interval asked for
    assert sampler.next_wait(0.1) == pytest.approx(20.0)  # 0.1 s of CPU a tick at 0.5 %: one tick per 20 s


def test_an_idle_container_is_read_by_its_counter_and_a_busy_one_in_full(manager: ContainerManager, redis_url: str):
    r = redis.Redis.from_url(redis_url)
    idle = manager.create("busybox", command=["sleep", "1000"])
    busy = manager.create("busybox", command=["sleep", "1000"], memory=256 * 1024 * 1024)
    for c in (idle, busy):
        manager.start(c["id"])
    sampler = StatsSampler(manager, redis_url, full_every=3600)
    try:
        assert sampler.tick(r) == 2  # first readings are full
        full_at = dict(sampler.full_at)
        first = {c["id"]: latest(r, c["id"]) for c in (idle, busy)}
        s = manager.exec_start(busy["id"], ["sh", "-c", "head -c 40000000 /dev/zero > /dev/shm/blob"])
        assert manager.exec_wait(busy["id"], s["id"], timeout=60)["exit_code"] == 0
        assert sampler.tick(r) == 2
        now = {c["id"]: latest(r, c["id"]) for c in (idle, busy)}
        # the busy one used CPU: read in full, its new memory shows
        assert sampler.full_at[busy["id"]] > full_at[busy["id"]]
        assert now[busy["id"]]["memory"] - first[busy["id"]]["memory"] >= 35_000_000
        # the idle one did not: its counter alone was read, its figures carried over with a new time
        assert sampler.full_at[idle["id"]] == full_at[idle["id"]]
        assert now[idle["id"]]["cpu_percent"] == 0 and now[idle["id"]]["memory"] == first[idle["id"]]["memory"]
        assert now[idle["id"]]["time"] > first[idle["id"]]["time"]
    finally:
        for c in (idle, busy):
            r.delete(f"berth:stats:{c['id']}", f"berth:stats:{c['id']}:min")
