"""Stats history: a host-side sampler that reads every running container's figures at a fixed interval and
keeps them in Redis, so a web server on any machine shows the last hour (and a day, per minute) at once.

    berth:stats:<engine id>       one entry per interval (default 2 s), capped at an hour
    berth:stats:<engine id>:min   one per minute (CPU % averaged, memory and pids at their peak), a day

Entries are flat string fields: time, cpu_percent, memory, memory_limit, memory_percent, pids, net_rx, net_tx,
block_read, block_write (counters cumulative, as `docker stats` shows them)."""

from __future__ import annotations

import logging
import threading
import time

from . import stats as _stats

log = logging.getLogger(__name__)

FIELDS = ("time", "cpu_percent", "memory", "memory_limit", "memory_percent", "pids", "net_rx", "net_tx",
          "block_read", "block_write")
HOUR = 3600
DAY_MINUTES = 1440
CPU_BUDGET = 0.005  # the sampler's share of one CPU at most: the interval stretches past it (bench/scale.py)
FULL_EVERY = 30.0  # seconds: an idle container's memory, pids and I/O are read again at least this often


def key(engine_id: str, minute: bool = False) -> str:
    return f"berth:stats:{engine_id}" + (":min" if minute else "")


def encode(sample: dict) -> dict[str, str]:
    return {f: "" if sample.get(f) is None else str(sample[f]) for f in FIELDS}


def decode(fields: dict) -> dict:
    out = {}
    for k, v in fields.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        out[k] = None if v == "" else float(v) if k in ("time", "cpu_percent", "memory_percent") else int(v)
    return out


class StatsSampler:
    """Samples `manager`'s running containers every `interval` s into Redis (a daemon thread)."""

    def __init__(self, manager, redis_url: str, interval: float = 2.0, budget: float = CPU_BUDGET,
                 full_every: float = FULL_EVERY):
        self.m = manager
        self.url = redis_url
        self.interval = interval
        self.budget = budget
        self.full_every = full_every
        self.prev: dict[str, dict] = {}
        self.minute: dict[str, list[dict]] = {}
        self.dirs: dict[str, tuple[int, dict[str, str]]] = {}  # id -> (init pid, its cgroup dirs)
        self.full_at: dict[str, float] = {}  # id -> monotonic time of its last full reading
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="berth-stats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import redis

        r = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        wait = self.interval
        while not self._stop.wait(wait):
            cpu = time.thread_time()
            try:
                self.tick(r)
            except Exception:  # noqa: BLE001 - a bad tick must not end the sampling
                log.exception("stats sampler tick failed")
            wait = self.next_wait(time.thread_time() - cpu)

    def next_wait(self, tick_cpu: float) -> float:
        """Seconds until the next tick: the interval, stretched so that sampling stays within its CPU budget
        (a host with a thousand idle containers must not spend a CPU watching them idle)."""
        return max(self.interval, tick_cpu / self.budget) if self.budget > 0 else self.interval

    def _running(self) -> list[dict]:
        """The running containers with their init's pid: one question to the monitor (refreshing every record
        from disk was most of a pass's cost)."""
        from workers.engine.monitor.client import MonitorError

        try:
            return [c for c in self.m.monitor.list() if c.get("status") == "running"]
        except MonitorError:
            return []  # no monitor: nothing runs

    def tick(self, r) -> int:
        """One pass: every running container sampled; returns how many."""
        maxlen = int(HOUR / self.interval) + 1
        pipe = r.pipeline(transaction=False)
        seen = set()
        mounts = None
        for c in self._running():
            if not c.get("pid"):
                continue
            cid, pid = c["id"], int(c["pid"])
            try:
                if self.dirs.get(cid, (None,))[0] != pid:
                    mounts = _stats.cgroup_mounts() if mounts is None else mounts  # once a tick, when needed
                    self.dirs[cid] = (pid, _stats.cgroup_dirs(pid, mounts))
                now = self._reading(cid, pid, self.dirs[cid][1])
            except OSError:
                continue  # ended meanwhile
            seen.add(cid)
            rated = _stats.with_rates(self.prev.get(cid), now)
            self.prev[cid] = now
            pipe.xadd(key(cid), encode(rated), maxlen=maxlen, approximate=True)
            bucket = self.minute.setdefault(cid, [])
            bucket.append(rated)
            if rated["time"] - bucket[0]["time"] >= 60:
                pipe.xadd(key(cid, True), encode(_downsample(bucket)), maxlen=DAY_MINUTES, approximate=True)
                self.minute[cid] = []
        pipe.execute()
        for gone in set(self.prev) - seen:
            for d in (self.prev, self.minute, self.dirs, self.full_at):
                d.pop(gone, None)
        return len(seen)

    def _reading(self, cid: str, pid: int, dirs: dict[str, str]) -> dict:
        """The container's figures now. One whose CPU counter has not moved since the last reading used no CPU,
        so its memory, pids and I/O are those of that reading: only the counter is read (one file instead of
        eight), and everything again at least every `full_every` seconds."""
        prev = self.prev.get(cid)
        mono = time.monotonic()
        if prev is not None and mono - self.full_at.get(cid, 0.0) < self.full_every:
            cpu = _stats.cpu_ns(dirs)
            if cpu is not None and cpu == prev.get("cpu_ns"):
                return {**prev, "time": time.time(), "mono_ns": time.monotonic_ns()}
        self.full_at[cid] = mono
        return _stats.sample(pid, dirs)


def _downsample(bucket: list[dict]) -> dict:
    cpus = [s["cpu_percent"] for s in bucket if s.get("cpu_percent") is not None]
    last = dict(bucket[-1])
    last["cpu_percent"] = round(sum(cpus) / len(cpus), 2) if cpus else None
    for f in ("memory", "pids"):
        vals = [s[f] for s in bucket if s.get(f) is not None]
        last[f] = max(vals) if vals else None
    return last


def history(r, engine_id: str, seconds: int = HOUR, max_points: int = 360) -> list[dict]:
    """The samples of the last `seconds` (the per-minute ones beyond an hour), at most `max_points` (evenly
    thinned), oldest first."""
    since_ms = int((time.time() - seconds) * 1000)
    if seconds > HOUR:
        entries = r.xrange(key(engine_id, True), min=since_ms)
    else:
        entries = r.xrange(key(engine_id), min=since_ms)
    points = [decode(fields) for _, fields in entries]
    if len(points) > max_points:
        step = len(points) / max_points
        points = [points[int(i * step)] for i in range(max_points - 1)] + [points[-1]]
    return points


def latest(r, engine_id: str) -> dict | None:
    got = r.xrevrange(key(engine_id), count=1)
    return decode(got[0][1]) if got else None
