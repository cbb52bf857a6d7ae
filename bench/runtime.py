"""Runtime benchmark (issue 6): start-up time of `/bin/true` in the busybox bundle, side by side,
and the memory that stays per idle container under Berth's monitor vs conmon + runc.

    sudo .venv/bin/python bench/runtime.py [--runs 20] [--containers 50] [--skip-memory]

Wall times are medians of --runs runs each, the runners interleaved round by round so that a
noisy moment hurts all of them alike; ratios are to runc. Memory is PSS (/proc/<pid>/smaps_rollup)
of every host process that stays while the containers idle, except the container processes
themselves (those in the containers' pid namespaces), divided by the number of containers.
Everything is made under a temporary directory and removed at the end, processes by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cgroup_parent import parent_removed_if_made  # noqa: E402
from workers.engine.images.busybox import make_busybox_rootfs  # noqa: E402
from workers.engine.runtime import command as runtime_command  # noqa: E402
from workers.engine.runtime.spec import default_spec  # noqa: E402

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CRUN = shutil.which("crun")
CONMON = shutil.which("conmon")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BERTH_CLI = runtime_command()  # as the engine and `berth-runtime` run it


def make_bundle(base: Path, args: list[str]) -> Path:
    bundle = base / "bundle"
    make_busybox_rootfs(bundle / "rootfs")
    cfg = default_spec(args)
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def new_id() -> str:
    return "b" + uuid.uuid4().hex[:10]


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cli_run(cmd: list[str], bundle: Path) -> Callable[[], None]:
    def run() -> None:
        cid = new_id()
        subprocess.run([*cmd, "run", "--bundle", str(bundle), cid], check=True, env=ENV,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return run


def in_process_run(root: Path, bundle: Path) -> Callable[[], None]:
    from workers.engine.runtime.api import Runtime

    rt = Runtime(str(root))
    null = os.open(os.devnull, os.O_RDWR)

    def run() -> None:
        code = rt.run(new_id(), str(bundle), stdin=null, stdout=null, stderr=null)
        if code != 0:
            raise RuntimeError(f"in-process run exited {code}")
    return run


def monitor_run(root: Path, bundle: Path, started: list) -> Callable[[], None]:
    """What the engine does for a container: the host's monitor runs Berth's runtime create + start (in a fork
    of itself since issue 16, by the runtime's command line before), the exit is awaited, then the delete."""
    from workers.engine.monitor import MonitorClient
    from workers.engine.runtime.api import Runtime

    client = MonitorClient(root)
    client.ensure_running()
    started.append(client)
    rt = Runtime(str(root / "runtime"))

    def run() -> None:
        cid = new_id()
        client.start_container(cid, bundle)
        st = client.wait(cid, timeout=60)
        rt.delete(cid, force=True)
        client.forget(cid)
        if st.get("exit_code") != 0:
            raise RuntimeError(f"monitor run exited {st.get('exit_code')}: {st.get('reason')}")
    return run


def floor_run(rootfs: Path) -> Callable[[], None]:
    argv = ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "chroot", str(rootfs), "/bin/true"]
    return lambda: subprocess.run(argv, check=True)


def probe(name: str, fn: Callable[[], None]) -> str | None:
    """None if the runner works here, else the reason it does not."""
    try:
        fn()
        return None
    except subprocess.CalledProcessError as exc:
        return f"exit {exc.returncode}: {(exc.stderr or b'').decode(errors='replace').strip()[:200]}"
    except Exception as exc:  # a runner that cannot run is reported, not fatal
        return f"{type(exc).__name__}: {exc}"


def crun_reason(bundle: Path, root: Path) -> str:
    p = subprocess.run([CRUN, "--root", str(root), "run", "--bundle", str(bundle), new_id()],
                       capture_output=True, text=True)
    return (p.stderr or p.stdout).strip().splitlines()[-1] if p.returncode else ""


def bench_startup(base: Path, runs: int) -> None:
    bundle = make_bundle(base / "true", ["/bin/true"])
    roots = {k: base / f"root-{k}" for k in ("berth-cli", "berth-inproc", "runc", "crun")}
    monitors: list = []
    try:
        _bench_startup(base, bundle, roots, monitors, runs)
    finally:
        for client in monitors:
            for pid in (client.pid(), client.holder_pid()):
                if pid:
                    stop_pid(pid)


def _bench_startup(base: Path, bundle: Path, roots: dict[str, Path], monitors: list, runs: int) -> None:
    runners: dict[str, Callable[[], None]] = {
        "(a) berth CLI run": cli_run([*BERTH_CLI, "--root", str(roots["berth-cli"])], bundle),
        "(b) berth in-process Runtime.run": in_process_run(roots["berth-inproc"], bundle),
        "(c) runc run": cli_run([RUNC, "--root", str(roots["runc"])], bundle),
        "(f) berth monitor start + wait + delete": monitor_run(base / "mon", bundle, monitors),
    }
    notes = {}
    if CRUN:
        reason = crun_reason(bundle, roots["crun"])
        if reason:
            notes["(d) crun run"] = f"does not run here: {reason}"
        else:
            runners["(d) crun run"] = cli_run([CRUN, "--root", str(roots["crun"])], bundle)
    else:
        notes["(d) crun run"] = "not installed"
    runners["(e) floor: unshare + chroot"] = floor_run(bundle / "rootfs")
    runners["(ref) bare python -c pass"] = lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)

    for name, fn in list(runners.items()):  # warm-up, and drop what cannot run here
        why = probe(name, fn)
        if why:
            notes[name] = f"failed: {why}"
            del runners[name]
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, fn in runners.items():
            times[name].append(timed(fn))
    runc_median = statistics.median(times["(c) runc run"]) if "(c) runc run" in times else None
    print(f"\nStart-up: `run` of /bin/true in the busybox bundle, median of {runs} runs each")
    print(f"{'runner':42} {'median ms':>10} {'min ms':>8} {'x runc':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{med / runc_median:8.2f}" if runc_median else "       -"
        print(f"{name:42} {med * 1000:10.1f} {min(ts) * 1000:8.1f} {ratio}")
    for name, note in notes.items():
        print(f"{name:42} {note}")


# ---- memory per idle container --------------------------------------------------------


def host_pidns() -> str:
    return os.readlink("/proc/self/ns/pid")


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def staying_overhead(before: set[int], only: set[int] | None = None) -> tuple[int, list[str]]:
    """PSS (KiB) of the new host-namespace processes that stay (not the containers' own); `only`: just these
    (on a shared machine other people's new processes are no container's)."""
    host_ns = host_pidns()
    total, who = 0, []
    for pid in sorted((pids() - before - {os.getpid()}) & (only if only is not None else pids())):
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != host_ns:
                continue  # a container process
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        kib = pss_kib(pid)
        total += kib
        who.append(f"{comm}[{pid}]={kib}KiB")
    return total, who


def stop_pid(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.01)


def memory_berth(base: Path, n: int, runtime_cmd: list[str] | None) -> tuple[int, list[str]]:
    from workers.engine.monitor import MonitorClient

    bundle = make_bundle(base / "sleep-berth", ["sleep", "100000"])
    root = base / "state"
    client = MonitorClient(root)
    before = pids()
    client.ensure_running()
    ids = []
    cmd = runtime_cmd or [*BERTH_CLI, "--root", str(root / "runtime")]
    try:
        for _ in range(n):
            cid = new_id()
            ids.append(cid)
            client.start_container(cid, bundle, runtime_cmd=runtime_cmd)
        time.sleep(1)  # let anything transient finish
        return staying_overhead(before)
    finally:
        for cid in ids:
            subprocess.run([*cmd, "delete", "--force", cid], env=ENV, capture_output=True)
        for pid in (client.pid(), client.holder_pid()):
            if pid:
                stop_pid(pid)


def memory_conmon(base: Path, n: int) -> tuple[int, list[str]]:
    bundle = make_bundle(base / "sleep-conmon", ["sleep", "100000"])
    root = base / "conmon-runc"
    work = base / "conmon"
    work.mkdir()
    before = pids()
    ids, conmon_pids = [], []
    try:
        for _ in range(n):
            cid = new_id()
            ids.append(cid)
            d = work / cid
            d.mkdir()
            subprocess.run([CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", RUNC,
                            "--runtime-arg", "--root", "--runtime-arg", str(root), "-b", str(bundle),
                            "-p", str(d / "pid"), "-P", str(d / "conmon.pid"), "-l", f"k8s-file:{d / 'ctr.log'}",
                            "--exit-dir", str(d), "--socket-dir-path", str(d), "--log-level", "error"],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60)
            conmon_pids.append(int((d / "conmon.pid").read_text()))
            for _ in range(1000):  # conmon runs `runc create` after it has detached
                if (d / "pid").exists():
                    break
                time.sleep(0.01)
            subprocess.run([RUNC, "--root", str(root), "start", cid], check=True)
        time.sleep(1)
        return staying_overhead(before, only=set(conmon_pids))
    finally:
        for cid in ids:
            subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True)
        for pid in conmon_pids:
            stop_pid(pid)


def bench_memory(base: Path, n: int) -> None:
    print(f"\nMemory that stays per idle container: {n} `sleep` containers (PSS, container processes excluded)")
    rows = []
    for name, fn in (("berth monitor + berth runtime", lambda: memory_berth(base / "m1", n, None)),
                     ("berth monitor + runc", lambda: memory_berth(base / "m2", n, [RUNC, "--root", str(base / "m2r")])),
                     ("conmon + runc", lambda: memory_conmon(base / "m3", n) if CONMON else (0, ["conmon missing"]))):
        try:
            total, who = fn()
            rows.append((name, total, who))
        except Exception as exc:
            rows.append((name, None, [f"failed: {exc}"]))
    print(f"{'setup':32} {'total KiB':>10} {'KiB/container':>14}  processes")
    for name, total, who in rows:
        if total is None:
            print(f"{name:32} {'-':>10} {'-':>14}  {who[0]}")
            continue
        shown = ", ".join(who[:3]) + (f", ... ({len(who)} processes)" if len(who) > 3 else "")
        print(f"{name:32} {total:10d} {total / n:14.1f}  {shown}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/runtime.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    try:
        with parent_removed_if_made():  # the runtime's /berth parent, if this run made it
            if not args.skip_startup:
                bench_startup(base, args.runs)
            if not args.skip_memory:
                bench_memory(base, args.containers)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
