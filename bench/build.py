"""A cached rebuild of the same Containerfile: Berth vs `buildah bud` and `podman build` (Debian's packages), and
the first (uncached) build for scale. Not a test: nothing here asserts a time.

    sudo .venv/bin/python bench/build.py [--runs 5]

The Containerfile: FROM busybox (Berth's base image, loaded into buildah's/podman's storage from the same
oci-archive), two COPY steps of a 20 MB context, a RUN, ENV/WORKDIR/CMD. Every tool builds once uncached, then
`--runs` times with everything cached; the median of the cached rebuilds is printed. podman and buildah use
the vfs driver in a private root (BENCH_STORAGE_DRIVER=overlay to change it); podman runs RUN with runc
(crun refuses hybrid cgroup hosts), buildah with --isolation chroot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.engine.images.base import ensure_base_images  # noqa: E402
from workers.engine.images.build import build  # noqa: E402
from workers.engine.images.store import ImageStore  # noqa: E402

CONTAINERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY data/ /app/data/
RUN cat /app/data/* | wc -c > /app/size.txt
COPY conf.txt /app/
CMD ["cat", "/app/size.txt"]
"""


def run(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:1] + argv[-6:])} failed: {out.stderr.strip()[-800:]}")
    return out.stdout


@contextlib.contextmanager
def clock(results: dict[str, list[float]], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    results.setdefault(name, []).append(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))  # short: the monitor's socket path
    results: dict[str, list[float]] = {}
    root = work / "b"
    try:
        ctx = work / "ctx"
        (ctx / "data").mkdir(parents=True)
        rng = random.Random(7)
        for i in range(4):
            (ctx / "data" / f"part{i}.bin").write_bytes(rng.randbytes(5 << 20))
        (ctx / "conf.txt").write_text("conf\n")
        (ctx / "Containerfile").write_text(CONTAINERFILE)
        store = ImageStore(root)
        ensure_base_images(store)
        archive = work / "busybox.tar"
        store.save(["busybox:latest"], archive, format="oci-archive")
        tools = {}
        for tool in ("buildah", "podman"):
            if shutil.which(tool):
                base = [tool, "--root", str(work / f"{tool}-root"), "--runroot", str(work / f"{tool}-run"),
                        "--storage-driver", os.environ.get("BENCH_STORAGE_DRIVER", "vfs")]
                image_id = run([*base, "pull", "-q", f"oci-archive:{archive}"]).split()[-1]
                run([*base, "tag", image_id, "busybox:latest"])
                tools[tool] = base
        with clock(results, "first build: berth"):
            build(store, ctx, tags=["bench:1"])
        for tool, base in tools.items():
            verb = "bud" if tool == "buildah" else "build"
            extra = ["--isolation", "chroot"] if tool == "buildah" else ["--runtime", "runc"]
            with clock(results, f"first build: {tool} {verb}"):
                run([*base, verb, *extra, "--layers", "--pull=never", "-q", "-t", "bench:1", str(ctx)])
        for _ in range(args.runs):
            with clock(results, "cached rebuild: berth"):
                r = build(store, ctx, tags=["bench:1"])
            assert r.new_layers == [], "the rebuild was not cached"
            for tool, base in tools.items():
                verb = "bud" if tool == "buildah" else "build"
                extra = ["--isolation", "chroot"] if tool == "buildah" else ["--runtime", "runc"]
                with clock(results, f"cached rebuild: {tool} {verb}"):
                    run([*base, verb, *extra, "--layers", "--pull=never", "-q", "-t", "bench:1", str(ctx)])
    finally:
        for tool in ("buildah", "podman"):
            if shutil.which(tool) and (work / f"{tool}-root").exists():
                subprocess.run([tool, "--root", str(work / f"{tool}-root"), "--runroot", str(work / f"{tool}-run"),
                                "--storage-driver", os.environ.get("BENCH_STORAGE_DRIVER", "vfs"), "rm", "-a", "-f"], capture_output=True)
        from tests.engine.containers.conftest import teardown_root

        teardown_root(root)
        for tool in ("buildah", "podman"):
            subprocess.run(["umount", "-R", str(work / f"{tool}-root")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"Containerfile: 7 steps, 20 MB context; cached rebuild median of {args.runs}")
    base = statistics.median(results.get("cached rebuild: podman build", [float("nan")]))
    for name, times in results.items():
        med = statistics.median(times)
        ratio = f"  podman/this = {base / med:.2f}" if name.startswith("cached") else ""
        print(f"{name:<34} {med:7.3f} s{ratio}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    main()
