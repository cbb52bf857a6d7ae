"""What the stats sampler costs: CPU time of one sampling pass over N running containers (cgroup files and
/proc/<pid>/net/dev read for each, one Redis pipeline), and the share of one CPU at the default 2 s interval.

    sudo .venv/bin/python bench/stats.py [--containers 100] [--ticks 20]

The Redis side is a private redis-server on a unix socket (the pipeline's cost is part of the figure);
`--no-redis` measures the reading alone. Containers are busybox `sleep`, started through the engine."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class NullRedis:
    """A stand-in whose pipeline drops everything (for --no-redis)."""

    def pipeline(self, transaction=False):
        return self

    def xadd(self, *a, **k):
        return None

    def execute(self):
        return []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--no-redis", action="store_true")
    args = ap.parse_args()
    from tests.engine.containers.conftest import teardown_root
    from workers.engine.containers import ContainerManager
    from workers.engine.containers.stats_history import StatsSampler
    from workers.engine.images.base import ensure_base_images
    from workers.engine.images.store import ImageStore

    work = Path(tempfile.mkdtemp(prefix="bs"))
    root = work / "root"
    server = None
    try:
        ensure_base_images(ImageStore(root))
        m = ContainerManager(root)
        t = time.monotonic()
        for i in range(args.containers):
            c = m.create("busybox", name=f"s{i}", command=["sleep", "100000"])
            m.start(c["id"])
        print(f"{args.containers} containers started in {time.monotonic() - t:.1f} s")
        if args.no_redis:
            r = NullRedis()
        else:
            import redis

            sock = work / "redis.sock"
            server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL)
            while not sock.exists():
                time.sleep(0.05)
            r = redis.Redis.from_url(f"unix://{sock}")
        sampler = StatsSampler(m, "unused", interval=2.0)
        sampler.tick(r)  # warm: first readings, imports
        cpu, wall = [], []
        for _ in range(args.ticks):
            c0, w0 = time.process_time(), time.perf_counter()
            n = sampler.tick(r)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        assert n == args.containers, n
        med = statistics.median(cpu)
        print(f"sampling pass over {n} containers ({'no Redis' if args.no_redis else 'Redis pipeline'}), "
              f"{args.ticks} passes: CPU median {med:.1f} ms (max {max(cpu):.1f}), wall median "
              f"{statistics.median(wall):.1f} ms")
        print(f"= {med / 2000 * 100:.2f} % of one CPU at the 2 s interval; per 100 containers "
              f"{med / n * 100 / 2000 * 100:.2f} %")
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        teardown_root(root)
        shutil.rmtree(work, ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    sys.exit(main())
