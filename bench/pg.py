"""The control plane on SQLite and on PostgreSQL (issue 18): API create+start until the row says running, and
the SQL statements per API create and per container.create job, beside `podman run -d` in the same run.

    sudo .venv/bin/python bench/pg.py [--runs 5] [--skip-podman] [--show-sql]

Each database gets Berth's whole stack in its own process (bench/pg_stack.py: redis, the ASGI web server, one
Celery worker, all as `make run` starts them): SQLite in a file, then PostgreSQL in a private server started here
(tests/postgres.py: Debian's postgresql, its own port and directory, fsync and synchronous commit on). podman
runs the same busybox with `--net none`, runc, its own store in the work dir. Everything is stopped by PID and
removed by path at the end.
"""

from __future__ import annotations

import argparse
import json
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

from tests.postgres import start_postgres  # noqa: E402 - no Django here: each stack process has its own settings


def run_stack(label: str, url: str, work: Path, runs: int, show_sql: bool, **extra_env: str) -> dict:
    cmd = [sys.executable, str(REPO / "bench" / "pg_stack.py"), "--database-url", url, "--runs", str(runs),
           "--work", str(work / label.split()[0]), *(["--show-sql"] if show_sql else [])]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BERTH_STATE_ROOT")}
    p = subprocess.run(cmd, cwd=REPO, env={**env, "PYTHONPATH": str(REPO), **extra_env}, stdout=subprocess.PIPE,
                       text=True)
    if p.returncode:
        raise RuntimeError(f"the {label} stack failed ({p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def podman_runs(work: Path, runs: int) -> list[float] | str:
    from workers.engine.containers.oci import binary
    from workers.engine.images.busybox import make_busybox_rootfs

    exe = binary("podman") or shutil.which("podman")
    if not exe:
        return "not installed"
    podman = [exe, "--root", str(work / "pstore"), "--runroot", str(work / "prun"), "--cgroup-manager", "cgroupfs",
              "--runtime", "runc"]
    try:
        import tarfile

        rootfs = make_busybox_rootfs(work / "prootfs")
        with tarfile.open(work / "bb.tar", "w") as tar:
            for c in sorted(rootfs.iterdir()):
                tar.add(c, arcname=c.name)
        p = subprocess.run([*podman, "import", str(work / "bb.tar"), "berthbench:1"], capture_output=True, text=True)
        if p.returncode:
            return p.stderr.strip()[:200]
        times = []
        for i in range(runs + 1):  # the first is a warm-up, as for Berth
            t0 = time.perf_counter()
            p = subprocess.run([*podman, "run", "-d", "--net", "none", "--ulimit", "nofile=20000:20000",
                                "--ulimit", "nproc=20000:20000", "--name", f"pb{i}", "berthbench:1",
                                "sleep", "100000"], capture_output=True, text=True)
            elapsed = (time.perf_counter() - t0) * 1000
            if p.returncode:
                return p.stderr.strip()[:200]
            subprocess.run([*podman, "rm", "-f", "-t", "0", f"pb{i}"], capture_output=True)
            if i:
                times.append(elapsed)
        return times
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--show-sql", action="store_true", help="print each API create's statements")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bpg"))
    server = None
    try:
        results = {"sqlite": run_stack("sqlite", f"sqlite:///{work / 'sqlite.db'}", work, args.runs, args.show_sql)}
        server = start_postgres(durable=True)  # fsync on, as SQLite's commits here and a real server's
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
            conn.execute("CREATE DATABASE bench_before")
        results["postgresql"] = run_stack("postgresql", server.url("bench"), work, args.runs, args.show_sql)
        # What it was before (issue 18's 290 ms): a connection per API request and per job.
        results["postgresql, no reuse"] = run_stack("postgresql-before", server.url("bench_before"), work,
                                                    args.runs, args.show_sql, BERTH_DB_CONN_MAX_AGE="0",
                                                    BERTH_DB_POOL_MAX="0")
        server.stop()
        server = None
        podman = "skipped" if args.skip_podman else podman_runs(work / "podman", args.runs)
        base = statistics.median(r["ms"] for r in results["sqlite"]["runs"])
        print(f"\nAPI create+start until the row says running, median of {args.runs} (ms; load {os.getloadavg()[0]:.1f})")
        print(f"{'':24}{'total':>8}{'API 202':>9}{'queued':>8}{'job':>8}{'× sqlite':>10}"
              f"{'queries: API':>14}{'job':>6}")
        for label, res in results.items():
            med = {k: statistics.median(r[k] for r in res["runs"]) for k in ("ms", "api_ms", "queue_ms", "job_ms")}
            jobs = sorted({q for q in res["job_queries"] if q is not None})
            print(f"{label:24}{med['ms']:8.1f}{med['api_ms']:9.1f}{med['queue_ms']:8.1f}{med['job_ms']:8.1f}"
                  f"{med['ms'] / base:10.2f}{res['api_queries']:14}{'/'.join(map(str, jobs)) or '?':>6}")
        if isinstance(podman, list):
            print(f"{'podman run -d (runc)':24}{statistics.median(podman):8.1f}{'':33}{statistics.median(podman) / base:10.2f}")
        else:
            print(f"podman run -d: not measured ({podman})")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
