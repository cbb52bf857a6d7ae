"""Pull and push of a multi-layer image through a loopback docker-registry: Berth's transport vs `skopeo copy`
and `podman pull/push`, rounds interleaved, medians printed. Not a test: nothing here asserts a time.

    sudo .venv/bin/python bench/registry.py [--mb 200] [--layers 4] [--runs 3]

Two figures per pull. "pull": until the pull returns. Berth's returns when every blob is verified and in the
store's OCI layout while its layers unpack in the background (`unpack="inline"`, the one-pass pull, returns
once they are unpacked); skopeo's copy into an OCI layout never unpacks; podman's pull unpacks (vfs driver
here). "→ running": from the pull's start until a container made from the image runs (`sleep`, no network;
Berth's first use waits for the layers still unpacking; `podman run -d`, runc). The image's first layer holds
a busybox root filesystem, so it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import inspect
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from tests.engine.images.registry_server import LocalRegistry  # noqa: E402
from workers.engine.images import registry  # noqa: E402
from workers.engine.images.store import ImageStore  # noqa: E402


def make_image(store: ImageStore, mb: int, layers: int, work: Path) -> str:
    """A `layers`-layer gzip image of `mb` MB (half random, half text, so gzip has work), via an oci-archive."""
    rng = random.Random(2026)
    per = (mb << 20) // layers
    layout = work / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    import hashlib
    import json

    from workers.engine.images.busybox import make_busybox_rootfs

    rootfs = make_busybox_rootfs(work / "bb-rootfs")
    descs, diff_ids = [], []
    for i in range(layers):
        data = rng.randbytes(per // 2) + (b"berth registry bench line %d\n" % i) * (per // 2 // 28)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            if i == 0:  # something to run
                for child in sorted(rootfs.iterdir()):
                    tf.add(child, arcname=child.name)
            info = tarfile.TarInfo(f"layer{i}/data.bin")
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
        plain = raw.getvalue()
        gz = gzip.compress(plain, compresslevel=1, mtime=0)
        digest = hashlib.sha256(gz).hexdigest()
        (blobs / digest).write_bytes(gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{digest}",
                      "size": len(gz)})
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd = hashlib.sha256(config).hexdigest()
    (blobs / cd).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": f"sha256:{cd}", "size": len(config)}, "layers": descs}).encode()
    md = hashlib.sha256(manifest).hexdigest()
    (blobs / md).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{md}",
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "bench:1"}}]}))
    archive = work / "bench.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
    store.load(archive)
    shutil.rmtree(layout)
    shutil.rmtree(rootfs)
    archive.unlink()
    return "bench:1"


@contextlib.contextmanager
def clock(results: dict[str, list[float]], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    results.setdefault(name, []).append(time.perf_counter() - t)


BACKGROUND = "unpack" in inspect.signature(registry.pull).parameters  # False: run on a checkout before it


def berth_pull_run(results: dict[str, list[float]], name: str, root: Path, ref: str, **kw) -> None:
    """Pull into a fresh state root, then a container from it started: both figures from the pull's start."""
    from tests.engine.containers.conftest import teardown_root
    from workers.engine.containers import ContainerManager
    from workers.engine.images.store import ImageStore

    try:
        t0 = time.perf_counter()
        registry.pull(ImageStore(root), ref, **kw)
        t1 = time.perf_counter()
        m = ContainerManager(root)
        info = m.create(ref, command=["/bin/sleep", "100000"])
        m.start(info["id"])
        t2 = time.perf_counter()
        results.setdefault(f"pull {name}", []).append(t1 - t0)
        results.setdefault(f"  → running {name}", []).append(t2 - t0)
        m.remove(info["id"], force=True)
    finally:
        teardown_root(root)


def podman_pull_run(results: dict[str, list[float]], proot: Path, ref: str) -> None:
    pp = ["podman", "--root", str(proot), "--runroot", str(proot) + "-run", "--storage-driver", "vfs",
          "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
    try:
        t0 = time.perf_counter()
        subprocess.run([*pp, "pull", "-q", "--tls-verify=false", ref], check=True, capture_output=True)
        t1 = time.perf_counter()
        subprocess.run([*pp, "run", "-d", "--net", "none", "--ulimit", "nofile=20000:20000", "--ulimit",
                        "nproc=20000:20000", "--name", "pb", ref, "/bin/sleep", "100000"], check=True, capture_output=True)
        t2 = time.perf_counter()
        results.setdefault("pull podman (unpacks, vfs)", []).append(t1 - t0)
        results.setdefault("  → running podman (run -d, runc)", []).append(t2 - t0)
        subprocess.run([*pp, "rm", "-f", "-t", "0", "pb"], capture_output=True)
    finally:
        subprocess.run([*pp, "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(proot, ignore_errors=True)
        shutil.rmtree(str(proot) + "-run", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-push", action="store_true", help="pulls only")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-reg-"))
    reg = LocalRegistry(work / "registry")
    reg.start()
    podman = shutil.which("podman")
    results: dict[str, list[float]] = {}
    try:
        src = ImageStore(work / "src")
        tag = make_image(src, args.mb, args.layers, work)
        size = src.resolve(tag).size
        ref = f"{reg.domain}/seed/bench:1"
        registry.push(src, tag, ref)
        pm = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
              "--storage-driver", "vfs"]
        if podman:
            subprocess.run([*pm, "pull", "-q", "--tls-verify=false", ref], check=True, capture_output=True)
        for r in range(args.runs):
            if BACKGROUND:
                berth_pull_run(results, "berth (verified blobs; layers unpack in the background)", work / f"b{r}", ref)
            dest = work / f"pull-skopeo-{r}"
            with clock(results, "pull skopeo copy → oci dir (no unpack)"):
                subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:bench"],
                               check=True)
            shutil.rmtree(dest)
            berth_pull_run(results, "berth one pass (download, verify, unpack)", work / f"i{r}", ref,
                           **({"unpack": "inline"} if BACKGROUND else {}))
            if podman:
                podman_pull_run(results, work / f"podman-pull-{r}", ref)
            dest = work / f"pull-skopeo-store-{r}"
            ds = ImageStore(dest)
            with clock(results, "pull skopeo copy → store + Berth unpacks"):  # skopeo as the transport
                subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                                f"oci:{ds.dir}:bench"], check=True)
                image = ds.resolve("sha256:" + (ds.dir / "index.json").read_text().split("sha256:")[1][:64])
                for diff_id, blob in zip(image.diff_ids, image.manifest["layers"], strict=True):
                    ds.ensure_layer(diff_id, blob)
            shutil.rmtree(dest)
            # each push goes to an empty registry: no blob can be skipped or mounted
            for name in ("push berth", "push skopeo copy (from the store's OCI layout)", "push podman"):
                if args.no_push or (name == "push podman" and not podman):
                    continue
                empty = LocalRegistry(work / f"empty-{r}-{name.split()[1]}")
                empty.start()
                try:
                    with clock(results, name):
                        if name == "push berth":
                            registry.push(src, tag, f"{empty.domain}/p/bench:1")
                        elif name.startswith("push skopeo"):
                            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                            f"oci:{src.dir}:{tag}", f"docker://{empty.domain}/p/bench:1"],
                                           check=True)
                        else:
                            subprocess.run([*pm, "push", "-q", "--tls-verify=false", ref,
                                            f"{empty.domain}/p/bench:1"], check=True, capture_output=True)
                finally:
                    empty.stop()
                    shutil.rmtree(empty.workdir, ignore_errors=True)
    finally:
        reg.stop()
        if podman:
            subprocess.run([*pm, "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"image: {args.layers} gzip layers, {size / 1e6:.0f} MB compressed; {args.runs} runs, median seconds")
    base = {"pull": statistics.median(results["pull skopeo copy → oci dir (no unpack)"])}
    if "push berth" in results:
        base["push"] = statistics.median(results["push skopeo copy (from the store's OCI layout)"])
    berth_run = results.get("  → running berth one pass (download, verify, unpack)")
    for name, times in results.items():
        med = statistics.median(times)
        if name.startswith("  →"):
            ratio = f"one-pass→running/this = {statistics.median(berth_run) / med:.2f}"
        else:
            ratio = f"skopeo/this = {base[name.split()[0]] / med:.2f}"
        print(f"{name:<62} {med:7.2f} s  {size / 1e6 / med:7.1f} MB/s  {ratio}")


if __name__ == "__main__":
    main()
