"""A pull's layers unpack in the background (workers/engine/images/unpack.py), here in a real second process
pulling from a real docker-registry on loopback: while it unpacks, the layer's lock is held and a first use gets
the layer it made; killed mid-unpack, its half-made layer is never used and the first use unpacks it again; a
config lying about a layer's content is refused at the first use and no layer dir is made under its name."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.engine.images.conftest import one_file_tar
from tests.engine.images.registry_server import LocalRegistry, registry_available
from workers.engine import flocks
from workers.engine.images import registry
from workers.engine.images.errors import DigestMismatch
from workers.engine.images.store import ImageStore
from workers.engine.images.unpack import lock_layer

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]

REPO = Path(__file__).resolve().parents[3]
DATA = random.Random(8).randbytes(16 << 20)  # does not compress: the layer is 16 MiB of work

# The pulling process. Its unpack reports each read of the blob; past 4 MiB (by then the tar's file has data on
# disk) it waits until the pull has returned and said so, says it holds there, then kills itself ("kill") or
# waits for a line on stdin ("hold") before it goes on.
CHILD = r"""
import os, signal, sys, threading
from workers.engine.images import registry
from workers.engine.images.store import ImageStore

root, ref, mode = sys.argv[1:4]
pulled, held = threading.Event(), []

def extracting(event):
    if event["current"] >= (4 << 20) and not held:
        held.append(1)
        pulled.wait()
        print("held", flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()

registry.pull(ImageStore(root), ref, unpack_progress=extracting)
print("pulled", flush=True)
pulled.set()
"""


@pytest.fixture
def pushed(store: ImageStore, reg: LocalRegistry) -> str:
    store.import_tarball(io.BytesIO(gzip.compress(one_file_tar(DATA), 1, mtime=0)), "big:1")
    ref = f"{reg.domain}/big/one:1"
    registry.push(store, "big:1", ref)
    return ref


def _child(root: Path, ref: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), ref, mode], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _whole(store: ImageStore, diff_id: str) -> bool:
    return hashlib.sha256((store.layer_dir(diff_id) / "big.bin").read_bytes()).digest() == \
        hashlib.sha256(DATA).digest()


def test_an_unpack_cut_short_by_a_crash_is_never_used_and_is_done_again(pushed: str, tmp_path: Path) -> None:
    root = tmp_path / "host2"
    child = _child(root, pushed, "kill")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL and out == "pulled\nheld\n"
    host = ImageStore(root)
    diff_id = host.resolve(pushed).diff_ids[0]  # the pull was done: tagged, its blob verified and in
    assert not host.layer_dir(diff_id).exists(), "a half-made layer was renamed in"
    cut = [p for p in host.tmp.iterdir() if p.name.startswith("layer-")]
    assert len(cut) == 1 and (cut[0] / "big.bin").stat().st_size > 0  # the unpack that was cut short

    rootfs = host.prepare_rootfs(pushed, tmp_path / "c1")  # the first use: its lock died with the child
    assert rootfs["lowerdirs"] == [str(host.layer_dir(diff_id))] and _whole(host, diff_id)
    host.release_rootfs(tmp_path / "c1")
    host.gc()
    assert list(host.tmp.iterdir()) == []  # the leftover is garbage, and gc knows it


def test_a_first_use_gets_the_layer_the_background_unpack_makes(pushed: str, tmp_path: Path) -> None:
    root = tmp_path / "host2"
    child = _child(root, pushed, "hold")
    try:
        assert child.stdout.readline() == "pulled\n" and child.stdout.readline() == "held\n"
        host = ImageStore(root)
        diff_id = host.resolve(pushed).diff_ids[0]
        assert not host.layer_dir(diff_id).exists()
        fd = lock_layer(host, diff_id, wait=False)
        if fd is not None:
            flocks.release(fd)
        assert fd is None, "the layer's lock is not held while it unpacks"
        (staging,) = [p for p in host.tmp.iterdir() if p.name.startswith("layer-")]
        made = staging.stat().st_ino
        child.stdin.write("go on\n")
        child.stdin.flush()
        rootfs = host.prepare_rootfs(pushed, tmp_path / "c1")  # waits for the child's unpack
        assert child.wait(timeout=120) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    assert host.layer_dir(diff_id).stat().st_ino == made, "the first use made its own copy of the layer"
    assert rootfs["lowerdirs"] == [str(host.layer_dir(diff_id))] and _whole(host, diff_id)
    host.release_rootfs(tmp_path / "c1")


def test_a_config_lying_about_a_layer_is_refused_at_its_first_use(store: ImageStore, reg: LocalRegistry,
                                                                   pushed: str, tmp_path: Path) -> None:
    image = store.resolve("big:1")
    base = f"http://{reg.domain}"
    other = "sha256:" + hashlib.sha256(b"another layer's content").hexdigest()
    config = json.dumps({**image.config, "rootfs": {"type": "layers", "diff_ids": [other]}}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    start = requests.post(f"{base}/v2/big/one/blobs/uploads/", timeout=10)
    loc = requests.compat.urljoin(base, start.headers["Location"])
    assert requests.put(f"{loc}{'&' if '?' in loc else '?'}digest={digest}", data=config, timeout=10).status_code == 201
    manifest = json.dumps({**image.manifest, "config": {**image.manifest["config"], "digest": digest,
                                                        "size": len(config)}}).encode()
    r = requests.put(f"{base}/v2/big/one/manifests/liar", data=manifest, timeout=10,
                     headers={"Content-Type": image.manifest["mediaType"]})
    assert r.status_code == 201, r.text

    host = ImageStore(tmp_path / "host2")
    pulled = registry.pull(host, f"{reg.domain}/big/one:liar")  # every blob is what its digest says
    with pytest.raises(DigestMismatch):
        pulled.wait_unpacked()
    with pytest.raises(DigestMismatch) as e:
        host.prepare_rootfs(f"{reg.domain}/big/one:liar", tmp_path / "c1")
    assert other in str(e.value)
    assert not host.layer_dir(other).exists() and not (tmp_path / "c1" / "image.json").exists()
