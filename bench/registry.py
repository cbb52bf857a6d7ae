"""Pull and push of a multi-layer image through a loopback docker-registry: Berth's transport vs `skopeo copy`
and `podman pull/push`, rounds interleaved, medians printed. Not a test: nothing here asserts a time.

    sudo .venv/bin/python bench/registry.py [--mb 200] [--layers 4] [--runs 3]

Berth's pull includes unpacking every layer into the store (what a container needs); skopeo's copy into an OCI
layout does not unpack; podman's pull does (into its own storage, vfs driver here).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
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

    descs, diff_ids = [], []
    for i in range(layers):
        data = rng.randbytes(per // 2) + (b"berth registry bench line %d\n" % i) * (per // 2 // 28)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
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
    archive.unlink()
    return "bench:1"


@contextlib.contextmanager
def clock(results: dict[str, list[float]], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    results.setdefault(name, []).append(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
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
        registry.push(src, tag, f"{reg.domain}/seed/bench:1")
        pm = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
              "--storage-driver", "vfs"]
        if podman:
            subprocess.run([*pm, "pull", "-q", "--tls-verify=false", f"{reg.domain}/seed/bench:1"], check=True,
                           capture_output=True)
        for r in range(args.runs):
            dest = work / f"pull-berth-{r}"
            with clock(results, "pull berth (unpacks)"):
                registry.pull(ImageStore(dest), f"{reg.domain}/seed/bench:1")
            shutil.rmtree(dest)
            dest = work / f"pull-skopeo-{r}"
            with clock(results, "pull skopeo copy → oci dir (no unpack)"):
                subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                f"docker://{reg.domain}/seed/bench:1", f"oci:{dest}:bench"], check=True)
            shutil.rmtree(dest)
            if podman:
                proot = work / f"podman-pull-{r}"
                pp = ["podman", "--root", str(proot), "--runroot", str(proot) + "-run", "--storage-driver", "vfs"]
                with clock(results, "pull podman (unpacks, vfs)"):
                    subprocess.run([*pp, "pull", "-q", "--tls-verify=false", f"{reg.domain}/seed/bench:1"],
                                   check=True, capture_output=True)
                subprocess.run([*pp, "system", "reset", "-f"], capture_output=True)
                shutil.rmtree(proot, ignore_errors=True)
            dest = work / f"pull-skopeo-store-{r}"
            ds = ImageStore(dest)
            with clock(results, "pull skopeo copy → store + Berth unpacks"):  # skopeo as the transport
                subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                f"docker://{reg.domain}/seed/bench:1", f"oci:{ds.dir}:bench"], check=True)
                image = ds.resolve("sha256:" + (ds.dir / "index.json").read_text().split("sha256:")[1][:64])
                for diff_id, blob in zip(image.diff_ids, image.manifest["layers"], strict=True):
                    ds.ensure_layer(diff_id, blob)
            shutil.rmtree(dest)
            # each push goes to an empty registry: no blob can be skipped or mounted
            for name in ("push berth", "push skopeo copy (from the store's OCI layout)", "push podman"):
                if name == "push podman" and not podman:
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
                            subprocess.run([*pm, "push", "-q", "--tls-verify=false", f"{reg.domain}/seed/bench:1",
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
    base = {"pull": statistics.median(results["pull skopeo copy → oci dir (no unpack)"]),
            "push": statistics.median(results["push skopeo copy (from the store's OCI layout)"])}
    for name, times in results.items():
        med = statistics.median(times)
        kind = name.split()[0]
        print(f"{name:<48} {med:7.2f} s  {size / 1e6 / med:7.1f} MB/s  skopeo/this = {base[kind] / med:.2f}")


if __name__ == "__main__":
    main()
