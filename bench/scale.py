"""A thousand idle containers on one host (issue 16), through the REST API of the real stack.

    sudo .venv/bin/python bench/scale.py [--n 1000] [--batch 25] [--idle 60] [--podman 5] [--conmon 50]

Berth as `make run` runs it (bench/scale_stack.py): redis-server, the ASGI web server, one Celery worker with its
own state root. Then:
- container 1 alone: POST /api/v1/containers (busybox `sleep`, started) to its row saying "running" (it also
  starts the host's monitor and holder); then --podman rounds of one more alone beside `podman run -d` and
  `podman start` (runc, netavark bridge, its own root): their median is the reference "first";
- the rest up to N-1 in batches of --batch: each batch POSTed, then awaited until every row runs; each
  container's time is from its POST to the `started` time the engine reported;
- the last --podman containers (up to N) each alone, their median against the reference's (the goal: within
  1.5x), with where the time went (the API, the queue, the job, after) from the create job's row. Both groups
  are timed on a quiet host (--quiet: the CPUs less than 15 % busy for 3 s in a row, waited for up to 180 s,
  as a busy shared host gets between bursts), so that the ratio says what a thousand running containers cost a start, not
  what the burst of starting them left behind; --podman more are timed right after the batches too, and shown
  beside it;
- memory that stays per container (monitor + holder + any other host process naming the state root, PSS)
  at 50 and at N, beside conmon + runc's for --conmon containers (bench/runtime.py's setup);
- at N: response times of the list API (first page, and page_size=500), the hosts page and the containers page;
- the CPU the worker (the agent: reporter, heartbeat, stats sampler), its pool, the monitor and the holder spend
  while all idle, from /proc/<pid>/stat over --idle seconds;
- every container removed through the API (DELETE ?force=true, in batches), then a check that nothing is left:
  no row, no container or runtime dir, no mount under the state root, no cgroup, no container process.
Everything runs under a temporary directory and is removed at the end, processes by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from console_web import wait_until
from scale_podman import Podman
from scale_stack import ScaleStack, idle_cpu

from tests.cgroup_parent import parent_removed_if_made


def _cpu_times() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine from /proc/stat; iowait counts as busy (a disk still writing)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, *rest = (int(x) for x in f.readline().split()[1:])
    return user + nice + system + sum(rest[:4]), user + nice + system + idle + sum(rest[:4])


def quiet(below: float, most: float = 180) -> str:
    """Wait until the machine's CPUs were busy less than `below` (a fraction of all of them) for three seconds
    in a row, at most `most` seconds: the load average, an average over minutes, lags far behind a burst."""
    t = time.monotonic()
    calm = 0
    busy = 1.0
    while calm < 3 and time.monotonic() - t < most:
        b0, a0 = _cpu_times()
        time.sleep(1)
        b1, a1 = _cpu_times()
        busy = (b1 - b0) / max(a1 - a0, 1)
        calm = calm + 1 if busy < below else 0
    return (f"CPUs {busy * 100:.0f} % busy, load {os.getloadavg()[0]:.2f}, after {time.monotonic() - t:.0f} s of "
            f"waiting for a quiet host")


def create(stack: ScaleStack, i: int) -> tuple[int, float]:
    t = time.time()
    r = stack.api.post(stack.url("/api/v1/containers"), json={
        "image": "busybox:latest", "host": stack.host_name, "name": f"idle-{i}", "command": ["sleep", "1000000"]})
    if r.status_code != 202:
        raise RuntimeError(f"create idle-{i}: {r.status_code} {r.text[:300]}")
    return r.json()["container"]["id"], t


def wait_running(pks: list[int], timeout: float = 600) -> dict[int, datetime]:
    """Until every row runs (a failed create job ends the bench); returns each row's `started`."""
    from containers.models import Container, Job

    def all_running():
        rows = dict(Container.objects.filter(pk__in=pks, state="running").values_list("pk", "started"))
        if len(rows) == len(pks):
            return rows
        failed = Job.objects.filter(kind="container.create", target_id__in=[str(p) for p in pks],
                                    state=Job.State.FAILED).first()
        if failed:
            raise RuntimeError(f"container.create of #{failed.target_id} failed: {failed.error}")
        return None

    return wait_until(all_running, timeout, f"{len(pks)} containers to run", 0.002 if len(pks) == 1 else 0.1)


def one(stack: ScaleStack, i: int, parts: list[dict[str, float]] | None = None) -> float:
    pk, t = create(stack, i)
    wait_running([pk])
    total = (time.time() - t) * 1000
    if parts is not None:
        parts.append(job_parts(pk, t, total))
    return total


def job_parts(pk: int, posted: float, total: float) -> dict[str, float]:
    """Where one container's POST-to-running went, from its create job's row: until the job existed (the API),
    in the queue, in the job (the worker: create + start on the host), and after (the row seen running)."""
    from containers.models import Job

    def finished():  # the row says running just before its job is marked finished
        job = Job.objects.filter(kind="container.create", target_id=str(pk)).order_by("pk").last()
        return job if job is not None and job.finished is not None else None

    job = wait_until(finished, 30, f"the create job of #{pk} to finish", 0.01)
    made, began, ended = (x.timestamp() * 1000 for x in (job.created, job.started, job.finished))
    return {"api": made - posted * 1000, "queued": began - made, "job": ended - began,
            "after": posted * 1000 + total - ended}


def parts_line(parts: list[dict[str, float]]) -> str:
    return ", ".join(f"{k} {statistics.median(p[k] for p in parts):.0f}" for k in parts[0])


def timed_get(stack: ScaleStack, session, path: str, runs: int = 5) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(runs):
        t = time.perf_counter()
        r = session.get(stack.url(path))
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code}")
        size = len(r.content)
    return statistics.median(times), size


def memory_row(stack: ScaleStack, n: int, label: str) -> None:
    total, sizes = stack.staying_kib()
    shown = ", ".join(f"{k} {v} KiB" for k, v in sizes.items())
    print(f"  memory at {n} ({label}): {total} KiB PSS = {total / n:.1f} KiB/container ({shown})", flush=True)


def limits_row(stack: ScaleStack) -> None:
    """What a thousand containers use of the host's limits: the fds of the monitor and the holder against
    their RLIMIT_NOFILE, the ports of Berth's bridges (a Linux bridge takes 1023), the host's neighbour
    entries (net.ipv4.neigh.default.gc_thresh3)."""
    import subprocess

    from workers.engine.net.store import BRIDGE_PREFIX

    parts = []
    for name, pid in stack.monitor_pids().items():
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            soft = next(line.split()[3] for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                        if line.startswith("Max open files"))
            parts.append(f"{name} {fds} fds (limit {soft})")
        except (OSError, StopIteration):
            continue
    for br in sorted(os.listdir("/sys/class/net")):
        if br.startswith(BRIDGE_PREFIX) and os.path.isdir(f"/sys/class/net/{br}/brif"):
            ports = len(os.listdir(f"/sys/class/net/{br}/brif"))
            if ports:  # other bridges of Berth on a shared machine: other state roots'
                parts.append(f"bridge {br} {ports} ports (of 1023)")
    neigh = subprocess.run(["ip", "-o", "neigh", "show"], capture_output=True, text=True).stdout.count("\n")
    thresh = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read_text().strip()
    parts.append(f"host neighbour entries {neigh} (gc_thresh3 {thresh})")
    print("  limits: " + "; ".join(parts), flush=True)


def conmon_memory(n: int) -> None:
    import runtime as rt  # bench/runtime.py: conmon + runc, the same busybox `sleep`

    if not rt.CONMON:
        print("  conmon: not installed")
        return
    base = Path(tempfile.mkdtemp(prefix="bsc-"))
    try:
        total, who = rt.memory_conmon(base, n)
        print(f"  memory at {n} (conmon + runc): {total} KiB PSS = {total / n:.1f} KiB/container "
              f"({len(who)} processes)", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def remove_all(stack: ScaleStack, pks: list[int], batch: int) -> float:
    from containers.models import Container

    t0 = time.monotonic()
    for i in range(0, len(pks), batch):
        part = pks[i:i + batch]
        for pk in part:
            r = stack.api.delete(stack.url(f"/api/v1/containers/{pk}?force=true"))
            if r.status_code != 202:
                raise RuntimeError(f"remove #{pk}: {r.status_code} {r.text[:300]}")
        wait_until(lambda part=part: not Container.objects.filter(pk__in=part).exists(), 600,
                   f"{len(part)} rows to go", 0.1)
    return time.monotonic() - t0


def leftovers(stack: ScaleStack, engine_ids: list[str], pids: dict[int, str | None]) -> list[str]:
    from containers.models import Container
    from tests.engine.conftest import host_mounts_under
    from workers.engine.runtime.cgroups import Cgroup

    found = []
    if Container.objects.filter(host=stack.host).exists():
        found.append(f"{Container.objects.filter(host=stack.host).count()} rows")
    for sub in ("containers", "runtime"):
        d = stack.wroot / sub
        if d.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in d.iterdir()):
            names = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            found.append(f"{len(names)} dirs in {sub}/ ({', '.join(names[:3])})")
    links = [p.name for p in (stack.wroot / "names").glob("*") if p.is_symlink()]
    if links:
        found.append(f"{len(links)} name links")
    mounts = host_mounts_under(stack.wroot)
    if mounts:
        found.append(f"{len(mounts)} mounts under the state root")
    cgroups = [e for e in engine_ids if any(os.path.isdir(d) for d in Cgroup.for_path(f"/berth/{e}").dirs.values())]
    if cgroups:
        found.append(f"{len(cgroups)} cgroups")
    alive = [p for p, ticks in pids.items() if ticks is not None and start_ticks(p) == ticks]  # not a reused pid
    if alive:
        found.append(f"{len(alive)} container processes")
    return found


def start_ticks(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def container_pids(stack: ScaleStack) -> dict[int, str | None]:
    """The containers' processes with their start times: pids are reused on a busy machine (pid_max 32768)."""
    from tests.engine.containers.conftest import _pids_of

    return {pid: start_ticks(pid) for pid in _pids_of(stack.wroot)}


def run(stack: ScaleStack, args: argparse.Namespace) -> None:
    from containers.models import Container

    n = args.n
    print(f"{n} idle busybox `sleep` containers through the API, batches of {args.batch}; load "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    cold = one(stack, 1)
    calm = quiet(args.quiet) if args.quiet else "no wait"
    print(f"  container 1 (alone, the host's monitor starts): {cold:.0f} ms from POST to running", flush=True)
    # containers 2..R+1 alone, each beside a `podman run -d` and a `podman start` (rounds interleaved)
    berth, pod = [], {"run -d": [], "start": []}
    first_parts: list[dict[str, float]] = []
    podman = Podman(stack.work / "podman") if args.podman else None
    try:
        for r in range(max(args.podman, 1)):
            berth.append(one(stack, 2 + r, first_parts))
            if podman is not None and podman.problem is None:
                pod["run -d"].append(podman.run_d())
                pod["start"].append(podman.start())
    finally:
        if podman is not None:
            podman.close()
    first = statistics.median(berth)
    print(f"  containers 2..{len(berth) + 1} (alone; {calm}): {first:.0f} ms median from POST to running "
          f"(ms: {parts_line(first_parts)})", flush=True)
    if podman is not None:
        if podman.problem:
            print(f"  podman: {podman.problem}")
        for what, times in pod.items():
            if times:
                med = statistics.median(times)
                print(f"  podman {what} (runc, netavark bridge): {med:.0f} ms median of {len(times)}; Berth's API "
                      f"create+start = {first / med:.2f}x", flush=True)
    batches: list[float] = []  # median ms per batch
    made = 1 + len(berth)
    t_all = time.monotonic()
    memory_done = False
    alone = max(args.podman, 1)  # the last ones, each alone: as many as the reference rounds
    right_after = alone if args.quiet else 0  # as many again, timed right after the batches
    while made < n - alone - right_after:
        size = min(args.batch, n - alone - right_after - made)
        sent = [create(stack, made + k + 1) for k in range(size)]
        started = wait_running([pk for pk, _ in sent])
        batches.append(statistics.median((started[pk].timestamp() - t) * 1000 for pk, t in sent))
        made += size
        if len(batches) == 1 or made % 100 < args.batch:
            print(f"  {made} running; batch median {batches[-1]:.0f} ms POST to started; load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
        if made >= 50 and not memory_done:
            time.sleep(1)  # what is transient (job processes' children) ends
            memory_row(stack, made, "berth monitor + holder")
            memory_done = True
    spent = time.monotonic() - t_all
    in_batches = made - 1 - len(berth)
    print(f"  batches: first {batches[0]:.0f} ms, last {batches[-1]:.0f} ms median per container; {in_batches} "
          f"started in batches in {spent:.0f} s ({spent / max(in_batches, 1) * 1000:.0f} ms each)", flush=True)
    if right_after:
        load = os.getloadavg()[0]
        parts: list[dict[str, float]] = []
        soon = statistics.median(one(stack, made + k + 1, parts) for k in range(right_after))
        print(f"  containers {made + 1}..{made + right_after} (alone, right after the batches, load {load:.2f}): "
              f"{soon:.0f} ms median = {soon / first:.2f}x the reference (ms: {parts_line(parts)})", flush=True)
        made += right_after
    calm = quiet(args.quiet) if args.quiet else "no wait"
    last_parts: list[dict[str, float]] = []
    last = statistics.median(one(stack, made + k + 1, last_parts) for k in range(n - made))
    print(f"  containers {made + 1}..{n} (alone, {made}+ running; {calm}): {last:.0f} ms median from POST to "
          f"running = {last / first:.2f}x the reference (ms: {parts_line(last_parts)})", flush=True)
    pks = list(Container.objects.filter(host=stack.host).values_list("pk", flat=True))
    engine_ids = list(Container.objects.filter(host=stack.host).values_list("engine_id", flat=True))
    running = Container.objects.filter(host=stack.host, state="running").count()
    print(f"  rows: {len(pks)}, running: {running}", flush=True)
    time.sleep(1)
    memory_row(stack, n, "berth monitor + holder")
    limits_row(stack)
    for what, session, path in (("list API, first page (50)", stack.api, "/api/v1/containers"),
                                ("list API, page_size=500", stack.api, "/api/v1/containers?page_size=500"),
                                ("hosts page", stack.page, "/hosts/"),
                                ("containers page", stack.page, "/containers/")):
        ms, size = timed_get(stack, session, path)
        print(f"  {what}: {ms:.0f} ms median of 5 ({size // 1024} KiB)", flush=True)
    from containers.models import Job

    wait_until(lambda: not Job.objects.filter(host=stack.host, state__in=("queued", "running")).exists(), 120,
               "jobs to end")
    time.sleep(2)
    groups = stack.agent_pids()
    print(f"  idle CPU over {args.idle:.0f} s (% of one CPU), load {os.getloadavg()[0]:.2f}:", flush=True)
    for name, pct in idle_cpu(groups, args.idle).items():
        print(f"    {name:16} {pct:6.2f} %  (pids {', '.join(map(str, groups[name]))})", flush=True)
    pids = container_pids(stack)
    took = remove_all(stack, pks, args.batch)
    print(f"  removed {len(pks)} through the API in {took:.0f} s ({took / len(pks) * 1000:.0f} ms each)", flush=True)
    left = leftovers(stack, engine_ids, pids)
    print("  left behind: " + ("; ".join(left) if left else "nothing"), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--podman", type=int, default=5, help="rounds of Berth alone vs podman run -d / start (0: none)")
    ap.add_argument("--quiet", type=float, default=0.15,
                    help="time the reference and the last ones once the CPUs are less busy than this fraction "
                         "for 3 s (0: no wait)")
    ap.add_argument("--conmon", type=int, default=50, help="conmon + runc containers for the memory row (0: none)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    if args.n < 3 + 3 * max(args.podman, 1):
        print("--n must leave room for the reference, the batches and the last ones", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))  # short: the monitor's socket path
    stack = None
    with parent_removed_if_made():  # the runtime's /berth parent, if this run made it
        try:
            stack = ScaleStack(work)
            run(stack, args)
        finally:
            if stack is not None:
                stack.close()
            shutil.rmtree(work, ignore_errors=True)
    if args.conmon:
        conmon_memory(args.conmon)
    return 0


if __name__ == "__main__":
    sys.exit(main())
