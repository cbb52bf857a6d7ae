"""Pull and push against a real docker-registry on loopback (no mock of the HTTP exchange): round trip into a
second host's fresh store and run it, blobs not sent or fetched twice, chunked uploads, a multi-platform index,
a corrupted blob refused with the store unchanged, an interrupted pull then a retry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path

import pytest
import requests

from tests.engine.images.conftest import one_file_tar, snapshot
from tests.engine.images.registry_server import LocalRegistry, registry_available
from workers.engine.images import registry
from workers.engine.images.errors import DigestMismatch, ImageError, RegistryUnreachable
from workers.engine.images.store import ImageStore

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]


@pytest.fixture
def source(store: ImageStore, busybox_tar: Path) -> ImageStore:
    store.import_tarball(busybox_tar, "busybox:latest")
    return store


@pytest.fixture
def fresh(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "second-host")


def _big_tar(size: int) -> bytes:
    """A plain tar holding `size` bytes that do not compress (fixed seed)."""
    return one_file_tar(random.Random(15).randbytes(size))


def test_push_then_pull_into_a_fresh_store_and_run(source: ImageStore, fresh: ImageStore, reg: LocalRegistry,
                                                    tmp_path_factory) -> None:
    from tests.engine.containers.conftest import teardown_root
    from tests.engine.containers.helpers import output, run
    from workers.engine.containers import ContainerManager

    pushed = registry.push(source, "busybox:latest", f"{reg.domain}/team/busybox:1")
    local = source.resolve("busybox:latest")
    assert pushed.digest == local.digest
    assert sorted(pushed.sent) == sorted([local.manifest["config"]["digest"],
                                          *(d["digest"] for d in local.manifest["layers"])])
    events: list[dict] = []
    pulled = registry.pull(fresh, f"{reg.domain}/team/busybox:1", progress=events.append)
    assert pulled.digest == pushed.digest and pulled.image.id == local.id
    assert pulled.image.tags == [f"{reg.domain}/team/busybox:1"]
    layer = local.manifest["layers"][0]
    bytes_seen = [e["current"] for e in events if e.get("id") == layer["digest"]]
    assert bytes_seen[-1] == layer["size"] and bytes_seen == sorted(bytes_seen)
    assert events[-1]["status"] == "done"
    # the second host runs it (a short state root: the monitor's socket path is length-limited)
    root = tmp_path_factory.mktemp("rr")
    try:
        host = ImageStore(root)
        registry.pull(host, f"{reg.domain}/team/busybox:1")
        m = ContainerManager(root)
        done = run(m, "echo pulled-and-running", image=f"{reg.domain}/team/busybox:1")
        assert done["exit_code"] == 0, done
        assert "pulled-and-running" in output(m, done["id"])
    finally:
        teardown_root(root)


def test_nothing_is_sent_or_fetched_twice(source: ImageStore, fresh: ImageStore, reg: LocalRegistry) -> None:
    first = registry.push(source, "busybox:latest", f"{reg.domain}/a/bb:1")
    again = registry.push(source, "busybox:latest", f"{reg.domain}/a/bb:2")
    assert again.sent == [] and sorted(again.skipped) == sorted(first.sent)
    registry.pull(fresh, f"{reg.domain}/a/bb:1")
    second = registry.pull(fresh, f"{reg.domain}/a/bb:2")
    assert second.fetched == [] and len(second.reused) == 1
    assert fresh.resolve(f"{reg.domain}/a/bb:2").digest == first.digest


def test_chunked_upload_and_cross_repository_mount(source: ImageStore, fresh: ImageStore,
                                                   reg: LocalRegistry) -> None:
    first = registry.push(source, "busybox:latest", f"{reg.domain}/a/chunked:1", chunk_size=256 << 10)
    layer = source.resolve("busybox:latest").manifest["layers"][0]
    assert layer["size"] > 4 * (256 << 10) and layer["digest"] in first.sent
    pulled = registry.pull(fresh, f"{reg.domain}/a/chunked:1")
    assert pulled.digest == first.digest
    events: list[dict] = []
    mounted = registry.push(source, "busybox:latest", f"{reg.domain}/b/other:1", mount_from="a/chunked",
                            progress=events.append)
    assert mounted.sent == [] and {e["status"] for e in events if e.get("id")} == {"mounted"}


def _put_blob(base: str, repo: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=10)
    assert start.status_code == 202, start.text
    loc = requests.compat.urljoin(base, start.headers["Location"])
    done = requests.put(loc + ("&" if "?" in loc else "?") + f"digest={digest}", data=data, timeout=10)
    assert done.status_code == 201, done.text
    return {"digest": digest, "size": len(data)}


def test_a_multi_platform_index_picks_the_platform(source: ImageStore, fresh: ImageStore,
                                                   reg: LocalRegistry) -> None:
    base = f"http://{reg.domain}"
    amd = registry.push(source, "busybox:latest", f"{reg.domain}/multi/app:amd64")
    image = source.resolve("busybox:latest")
    arm_config = json.dumps({**image.config, "architecture": "arm64", "variant": "v8"}).encode()
    cfg = _put_blob(base, "multi/app", arm_config)
    arm_manifest = json.dumps({**image.manifest, "config": {**image.manifest["config"], **cfg}}).encode()
    arm_digest = "sha256:" + hashlib.sha256(arm_manifest).hexdigest()
    r = requests.put(f"{base}/v2/multi/app/manifests/{arm_digest}", data=arm_manifest, timeout=10,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest, "size": len(arm_manifest),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.digest, "size": amd.size,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    r = requests.put(f"{base}/v2/multi/app/manifests/latest", data=index, timeout=10,
                     headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert r.status_code == 201, r.text

    picked = registry.pull(fresh, f"{reg.domain}/multi/app", platform="linux/amd64")
    assert picked.digest == amd.digest and picked.image.config["architecture"] == "amd64"
    assert picked.index_digest == "sha256:" + hashlib.sha256(index).hexdigest()
    arm = registry.pull(fresh, f"{reg.domain}/multi/app", platform="linux/arm64", tag="app:arm")
    assert arm.digest == arm_digest and arm.image.config["architecture"] == "arm64"
    assert arm.fetched == []  # the same layer as the amd64 image: already in the store
    with pytest.raises(ImageError) as e:
        registry.pull(fresh, f"{reg.domain}/multi/app", platform="linux/s390x")
    assert e.value.field == "platform" and "linux/amd64" in str(e.value) and "linux/arm64/v8" in str(e.value)


def test_a_corrupted_blob_is_refused_and_the_store_is_unchanged(source: ImageStore, fresh: ImageStore,
                                                               reg: LocalRegistry) -> None:
    pushed = registry.push(source, "busybox:latest", f"{reg.domain}/bad/bb:1")
    layer = source.resolve("busybox:latest").manifest["layers"][0]
    blob = reg.blob_file(layer["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different: inside a file's content of the plain tar
    blob.write_bytes(bytes(data))
    before = snapshot(fresh.dir)
    with pytest.raises(DigestMismatch) as e:
        registry.pull(fresh, f"{reg.domain}/bad/bb:1")
    assert layer["digest"] in str(e.value)
    assert snapshot(fresh.dir) == before
    assert fresh.list() == [] and not fresh.exists(pushed.digest)


def test_an_interrupted_pull_leaves_the_store_readable_and_a_retry_completes(
        store: ImageStore, fresh: ImageStore, reg: LocalRegistry) -> None:
    big = _big_tar(48 << 20)
    store.import_tarball(io.BytesIO(big), "big:1")
    registry.push(store, "big:1", f"{reg.domain}/big/one:1")
    fresh.import_tarball(io.BytesIO(_big_tar(1024)), "already:here")
    before = [(i.digest, i.tags) for i in fresh.list()]

    def kill_mid_layer(event: dict) -> None:
        if event.get("status") == "downloading" and event["current"] > (1 << 20) and reg.proc is not None:
            reg.kill()  # SIGKILL: the connection drops with most of the layer still unsent

    with pytest.raises(RegistryUnreachable) as e:
        registry.pull(fresh, f"{reg.domain}/big/one:1", progress=kill_mid_layer)
    assert "cut short" in str(e.value) or "connection" in str(e.value)
    assert [(i.digest, i.tags) for i in fresh.list()] == before  # readable, as it was
    assert list(fresh.tmp.iterdir()) == []
    reg.start()
    pulled = registry.pull(fresh, f"{reg.domain}/big/one:1")
    pulled.wait_unpacked()  # its layer unpacks in the background
    content = (fresh.layer_dir(pulled.image.diff_ids[0]) / "big.bin").read_bytes()
    assert hashlib.sha256(content).digest() == hashlib.sha256(random.Random(15).randbytes(48 << 20)).digest()
    assert os.path.exists(fresh.blob_path(pulled.digest))


def test_skopeo_reads_a_pulled_image(source: ImageStore, fresh: ImageStore, reg: LocalRegistry) -> None:
    import subprocess

    registry.push(source, "busybox:latest", f"{reg.domain}/x/bb:1")
    registry.pull(fresh, f"{reg.domain}/x/bb:1")
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{fresh.dir}:{reg.domain}/x/bb:1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["config"]["digest"] == source.resolve("busybox:latest").id
