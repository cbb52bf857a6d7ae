"""What grows in one container's create + start with the number of running containers, through the engine alone.

No control plane, no worker: a ContainerManager on its own state root creates and starts `sleep` containers with a
disk (10 GiB, as the worker gives by default) on one network. It times a few probe containers while only a couple
run, starts --n more, and times the same probes again; each probe's create and start are timed apart, and with
--profile the probes run under cProfile (the two reports are written beside each other to compare: what grew).
bench/scale.py measures the same thing through the API; this says which part of the host's work grew.

  .venv/bin/python bench/engine_scale.py --n 1000 [--network dns|plain|none] [--profile DIR]

Prints the host's mount count at both points: every mount on the host is copied into each new container's mount
namespace (and detached after its pivot_root), so it is the first thing to look at when the start grows.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cgroup_parent import parent_removed_if_made  # noqa: E402
from tests.engine.containers.conftest import teardown_root  # noqa: E402
from workers.engine.containers import ContainerManager  # noqa: E402
from workers.engine.images import ImageStore  # noqa: E402
from workers.engine.images.base import ensure_base_images  # noqa: E402

PROBES = 7


def mounts() -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def probe(m: ContainerManager, spec: dict, tag: str, profile: Path | None) -> None:
    creates, starts = [], []
    prof = cProfile.Profile() if profile else None
    for _ in range(PROBES):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        c = m.create("busybox", command=["sleep", "1000000"], **spec)
        t1 = time.perf_counter()
        m.start(c["id"])
        t2 = time.perf_counter()
        if prof:
            prof.disable()
        creates.append((t1 - t0) * 1000)
        starts.append((t2 - t1) * 1000)
    c, s = statistics.median(creates), statistics.median(starts)
    print(f"  {tag}: create {c:.1f} ms, start {s:.1f} ms, both {c + s:.1f} ms (medians of {PROBES}); "
          f"{mounts()} mounts on the host; load {os.getloadavg()[0]:.2f}", flush=True)
    if prof and profile:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(60)
        (profile / f"engine-{tag}.txt").write_text(out.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--network", choices=("dns", "plain", "none"), default="dns",
                    help="a network with DNS (as a tenant's default), one without, or no network")
    ap.add_argument("--profile", type=Path, help="write the probes' cProfile reports into this directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/engine_scale.py needs root (namespaces, cgroups, loop devices)", file=sys.stderr)
        return 2
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))  # short: the monitor's socket path
    with parent_removed_if_made():
        try:
            ensure_base_images(ImageStore(root))
            m = ContainerManager(root, default_disk=10 << 30)
            spec: dict = {"networks": ["none"]}
            if args.network != "none":  # a /20: a thousand containers on one network, as a tenant's default
                m.net.create("bench", dns=args.network == "dns", subnet="10.77.0.0/20")
                spec = {"networks": ["bench"]}
            print(f"{args.n} running `sleep` containers through the engine alone (10 GiB disks, network "
                  f"{args.network}); load {os.getloadavg()[0]:.2f}", flush=True)
            first = m.create("busybox", command=["true"], **spec)
            m.start(first["id"])  # the host's monitor is up before the probes
            probe(m, spec, "few", args.profile)
            t = time.monotonic()
            for _ in range(args.n - PROBES):
                c = m.create("busybox", command=["sleep", "1000000"], **spec)
                m.start(c["id"])
            print(f"  {args.n - PROBES} more started one after another in {time.monotonic() - t:.0f} s", flush=True)
            probe(m, spec, f"at-{args.n}", args.profile)
        finally:
            t = time.monotonic()
            teardown_root(root)
            shutil.rmtree(root, ignore_errors=True)
            print(f"  removed in {time.monotonic() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
