"""Runtime seam benchmark (issue 11): create + start + delete of one container through
workers/engine/containers/oci.py, for each runtime that works here, side by side.

    sudo .venv/bin/python bench/seam.py [--runs 30]

The bundle is what the engine makes: a busybox overlay (lower dir + upper/work) with `sleep 1000`;
Berth's runtime is called in-process, runc and crun by their command line, each of them mounting the overlay
as it must (berth in the container's mount namespace, the seam on the host for runc/crun). A round is
create, start, delete --force; rounds are interleaved across runtimes so a noisy moment hurts all alike.
Figures: median and 90th percentile in milliseconds, ratio of medians to runc. Everything lives under a
temporary directory and is removed at the end (containers by id, processes by pid).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workers.engine.containers import oci, runtime_probe  # noqa: E402
from workers.engine.images.busybox import make_busybox_rootfs  # noqa: E402
from workers.engine.runtime.spec import default_spec  # noqa: E402


def make_bundle(base: Path, lower: Path, name: str) -> Path:
    bundle = base / name
    for d in ("rootfs", "upper", "work"):
        (bundle / d).mkdir(parents=True)
    cfg = default_spec(["sleep", "1000"])
    cfg["linux"]["cgroupsPath"] = f"/berth/bench-{name}"
    cfg["annotations"] = {"org.berth.rootfs.lowerdirs": str(lower), "org.berth.rootfs.upperdir": str(bundle / "upper"),
                          "org.berth.rootfs.workdir": str(bundle / "work")}
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def reap() -> None:
    """The inits reparent to us (a subreaper): reap them, by whatever pid they had."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def one(rt: oci.OCIRuntime, bundle: Path, null: int) -> tuple[float, float, float]:
    """(create, start, delete) seconds."""
    cid = "b" + uuid.uuid4().hex[:10]
    t0 = time.perf_counter()
    rt.create(cid, bundle, stdin=null, stdout=null, stderr=null)
    t1 = time.perf_counter()
    rt.start(cid)
    t2 = time.perf_counter()
    rt.delete(cid, force=True, bundle=bundle)
    t3 = time.perf_counter()
    reap()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    base = Path(tempfile.mkdtemp(prefix="berth-bench-seam-"))
    null = os.open(os.devnull, os.O_RDWR)
    try:
        lower = make_busybox_rootfs(base / "busybox")
        runners: dict[str, tuple[oci.OCIRuntime, Path]] = {}
        for name in oci.RUNTIMES:
            why = runtime_probe.problem(name)
            if why:
                print(f"{name:>6}: does not work here: {why}")
                continue
            runners[name] = (oci.get(name, base / "state"), make_bundle(base, lower, name))
        times: dict[str, list[tuple[float, float, float]]] = {n: [] for n in runners}
        for rt, bundle in runners.values():
            one(rt, bundle, null)  # warm-up (page cache, seccomp filter cache)
        for _ in range(args.runs):
            for name, (rt, bundle) in runners.items():
                times[name].append(one(rt, bundle, null))
        ref = statistics.median(sum(t) for t in times["runc"]) if "runc" in times else None
        print(f"create+start+delete through the seam, {args.runs} runs each (ms; verbs are medians)")
        print(f"{'runtime':>8} {'total':>8} {'p90':>8} {'vs runc':>8} {'create':>8} {'start':>8} {'delete':>8}")
        for name, ts in times.items():
            totals = sorted(sum(t) for t in ts)
            med, p90 = statistics.median(totals), totals[int(0.9 * (len(totals) - 1))]
            verbs = [statistics.median(t[i] for t in ts) * 1000 for i in range(3)]
            ratio = f"{med / ref:.2f}x" if ref else "-"
            print(f"{name:>8} {med * 1000:8.1f} {p90 * 1000:8.1f} {ratio:>8} "
                  + " ".join(f"{v:8.1f}" for v in verbs))
    finally:
        os.close(null)
        for d in sorted(Path("/sys/fs/cgroup").glob("*/berth/bench-*"), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
