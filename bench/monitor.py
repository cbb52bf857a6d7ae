"""Monitor benchmark (issue 16): memory that stays per idle container, Berth's monitor + holder beside
conmon, at several sizes; the marginal cost (what one more container adds) is the figure that scales.

    sudo .venv/bin/python bench/monitor.py [--sizes 1,50,1000] [--skip-conmon]

Both run the same busybox `sleep` bundle under runc (so the runtime is the same); memory is the PSS of
the processes that stay to watch the containers, found by PID (Berth: the monitor and the holder;
conmon: one conmon per container), so other work on a shared machine does not count. Everything is
made under a temporary directory and removed at the end, processes by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import subprocess  # noqa: E402
import time  # noqa: E402

from runtime import CONMON, ENV, RUNC, make_bundle, new_id, pss_kib, stop_pid  # noqa: E402


def settle() -> None:
    time.sleep(1)  # let anything transient (runtime helpers) finish before measuring


def memory_berth(base: Path, n: int) -> tuple[int, list[str]]:
    from workers.engine.monitor import MonitorClient

    bundle = make_bundle(base / "sleep", ["sleep", "100000"])
    root = base / "state"
    cmd = [RUNC, "--root", str(base / "runc")]
    client = MonitorClient(root)
    client.ensure_running()
    ids = []
    try:
        for _ in range(n):
            cid = new_id()
            ids.append(cid)
            client.start_container(cid, bundle, runtime_cmd=cmd)
        settle()
        mon, holder = client.pid(), client.holder_pid()
        return pss_kib(mon) + pss_kib(holder), [f"monitor={pss_kib(mon)}KiB", f"holder={pss_kib(holder)}KiB"]
    finally:
        for cid in ids:
            subprocess.run([*cmd, "delete", "--force", cid], env=ENV, capture_output=True)
        for pid in (client.pid(), client.holder_pid()):
            if pid:
                stop_pid(pid)


def memory_conmon(base: Path, n: int) -> tuple[int, list[str]]:
    bundle = make_bundle(base / "sleep", ["sleep", "100000"])
    root, work = base / "runc", base / "conmon"
    work.mkdir(parents=True)
    ids, pids = [], []
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
            pids.append(int((d / "conmon.pid").read_text()))
            for _ in range(1000):  # conmon runs `runc create` after it has detached
                if (d / "pid").exists():
                    break
                time.sleep(0.01)
            subprocess.run([RUNC, "--root", str(root), "start", cid], check=True)
        settle()
        return sum(pss_kib(p) for p in pids), [f"{len(pids)} conmon"]
    finally:
        for cid in ids:
            subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True)
        for pid in pids:
            stop_pid(pid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,50")
    ap.add_argument("--skip-conmon", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/monitor.py needs root", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="berth-bench-mon-"))
    rows: dict[str, dict[int, int]] = {"berth monitor + holder (runc)": {}, "conmon (runc)": {}}
    try:
        for n in sizes:
            total, who = memory_berth(base / f"b{n}", n)
            rows["berth monitor + holder (runc)"][n] = total
            print(f"berth n={n}: {total} KiB  {', '.join(who[:4])}", flush=True)
            if CONMON and not args.skip_conmon:
                total, who = memory_conmon(base / f"c{n}", n)
                rows["conmon (runc)"][n] = total
                print(f"conmon n={n}: {total} KiB ({len(who)} processes)", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{'setup':32} {'containers':>10} {'total KiB':>10} {'KiB/container':>14} {'marginal KiB':>13}")
    for name, by_n in rows.items():
        first = min(by_n) if by_n else None
        for n, total in sorted(by_n.items()):
            marginal = (total - by_n[first]) / (n - first) if n != first else float("nan")
            print(f"{name:32} {n:10d} {total:10d} {total / n:14.1f} {marginal:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
