"""Image store benchmarks, side by side with GNU tar (the floor) in one run.

    .venv/bin/python bench/images.py [--size-mb 500] [--small-mb 5] [--workdir DIR]

- export: `ImageStore.export_container` of a container whose image holds a SIZE MB tree, against
  `tar -c` of the same unpacked tree piped to `cat` (GNU tar skips reading when it writes to
  /dev/null itself); both outputs go to /dev/null. podman is not installed here, so it has no column.
- import: `ImageStore.import_tarball` (hashing, hostile-input checks, blob kept, syncfs) against
  `tar -x` of the same archive into an empty dir.
- create: `prepare_rootfs` for a SMALL MB and a SIZE MB image (must not grow with size).
Each measured operation runs in its own child process so its peak RSS (ru_maxrss) is its own.
Run as root (layers keep owners and device whiteouts). Figures vary with the page cache: every
operation runs once before it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_tree(root: Path, size_mb: int) -> None:
    """80 % of the bytes in 8 MiB files, 20 % in 16 KiB files, a few directories deep."""
    block = os.urandom(1 << 20)
    big, small = int(size_mb * 0.8) // 8, (size_mb * (1 << 20) // 5) // (16 << 10)
    for i in range(big):
        d = root / "big" / f"d{i % 8}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"f{i}", "wb") as f:
            for _ in range(8):
                f.write(block)
    for i in range(small):
        d = root / "small" / f"d{i % 64}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"s{i}").write_bytes(block[(i * 4096) % (1 << 19):][: 16 << 10])


def child(cmd: list[str], stdout=subprocess.DEVNULL, shell: bool = False) -> tuple[float, int | None]:
    """Run a child, return (wall seconds, its peak RSS in KiB or None).

    ru_maxrss of a forked child starts at the parent's size, so the Python ops report their own
    VmHWM (peak RSS of their address space) and their own time (from opening the store, without the
    interpreter's start-up) through a file instead."""
    hwm = tempfile.NamedTemporaryFile(prefix="hwm-", delete=False)
    hwm.close()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, shell=shell, cwd=REPO, env={**os.environ, "BENCH_HWM": hwm.name})
    elapsed = time.perf_counter() - t0
    text = Path(hwm.name).read_text().split()
    os.unlink(hwm.name)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    if text:  # a Python op: its own time, without the interpreter's start-up and imports
        return float(text[1]), int(text[0])
    return elapsed, None


def op(argv: list[str]) -> None:
    """Child side: one store operation."""
    from workers.engine.images import ImageStore

    kind, root = argv[0], argv[1]
    t0 = time.perf_counter()
    store = ImageStore(root)
    if kind == "export":
        with open(os.devnull, "wb") as out:
            store.export_container(argv[2], out)
    elif kind == "import":
        store.import_tarball(argv[2], argv[3])
    elif kind == "create":
        store.prepare_rootfs(argv[2], argv[3])
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:") and os.environ.get("BENCH_HWM"):
            Path(os.environ["BENCH_HWM"]).write_text(f"{line.split()[1]} {time.perf_counter() - t0}")


def best(runs: int, fn) -> tuple[float, int]:
    fn()  # warm the page cache
    results = [fn() for _ in range(runs)]
    rss = [r[1] for r in results if r[1] is not None]
    return min(r[0] for r in results), (max(rss) if rss else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--small-mb", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-images-", dir=args.workdir))
    py = [sys.executable, __file__, "_op"]
    try:
        from workers.engine.images import ImageStore
        from workers.engine.images.tarwrite import TarWriter, write_tree

        trees, tars = {}, {}
        for label, mb in (("small", args.small_mb), ("big", args.size_mb)):
            trees[label] = work / f"tree-{label}"
            make_tree(trees[label], mb)
            tars[label] = work / f"{label}.tar"
            with open(tars[label], "wb") as f:
                w = TarWriter(f)
                write_tree(str(trees[label]), w)
                w.close()
        size = tars["big"].stat().st_size
        root = work / "state"
        store = ImageStore(root)
        for label in trees:
            store.import_tarball(tars[label], f"bench:{label}")
        cdir = root / "containers" / "export"
        store.prepare_rootfs("bench:big", cdir)

        rows = []
        t, rss = best(args.runs, lambda: child([*py, "export", str(root), str(cdir)]))
        rows.append(("export (berth)", t, rss))
        t, rss = best(args.runs, lambda: child(f"tar -C {trees['big']} -cf - . | cat > /dev/null", shell=True))
        rows.append(("export floor: tar -c | cat", t, rss))

        counter = iter(range(1000))

        def berth_import():
            # A fresh store each time, or the second import would find the layer already unpacked.
            fresh = work / f"imp-{next(counter)}"
            r = child([*py, "import", str(fresh), str(tars["big"]), "bench:imported"])
            shutil.rmtree(fresh, ignore_errors=True)
            return r

        t, rss = best(args.runs, berth_import)
        rows.append(("import (berth)", t, rss))

        def tar_x():
            dest = work / "tar-x"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            r = child(["tar", "-xf", str(tars["big"]), "-C", str(dest)])
            subprocess.run(["sync", "-f", str(dest)], check=True)  # berth syncs before renaming a layer in
            return r

        t, rss = best(args.runs, tar_x)
        rows.append(("import floor: tar -x + sync", t, rss))

        creates = {}
        for label in ("small", "big"):
            n = iter(range(1000))
            creates[label] = best(args.runs, lambda label=label, n=n: child(
                [*py, "create", str(root), f"bench:{label}", str(root / "containers" / f"c-{label}-{next(n)}")]))

        print(f"\nimage store benchmark: tree of {size / 1e6:.0f} MB ({args.size_mb} MB asked), best of {args.runs}")
        print(f"{'operation':<30} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13}")
        for name, t, rss in rows:
            shown = f"{rss / 1024:13.1f}" if rss else f"{'-':>13}"
            print(f"{name:<30} {t:8.2f} {size / 1e6 / t:8.0f} {shown}")
        exp = rows[1][1] / rows[0][1]
        imp = rows[3][1] / rows[2][1]
        print(f"export throughput = {exp * 100:.0f} % of tar -c; import throughput = {imp * 100:.0f} % of tar -x")
        for label, mb in (("small", args.small_mb), ("big", args.size_mb)):
            t, rss = creates[label]
            print(f"create (prepare_rootfs) {mb:>5} MB image: {t * 1000:7.1f} ms in-process, "
                  f"peak RSS {rss / 1024:.1f} MiB")
        print(json.dumps({"export_ratio": round(exp, 3), "import_ratio": round(imp, 3),
                          "create_small_s": round(creates['small'][0], 4), "create_big_s": round(creates['big'][0], 4),
                          "podman": "not installed"}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_op":
        op(sys.argv[2:])
    else:
        main()
