"""The store: imports in every compression, tags, the OCI layout read by skopeo and umoci, refcounts, gc."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile

import pytest
import zstandard

from workers.engine.images import ImageInUse, ImageNotFound, ImageStore, UnsafeEntry

from .conftest import entry, make_tar

pytestmark = pytest.mark.root


@pytest.mark.parametrize("compression", ["plain", "gzip", "zstd"])
def test_import_each_compression_unpacks_the_same_tree(store, busybox_tar, tmp_path, compression):
    data = busybox_tar.read_bytes()
    src = tmp_path / f"rootfs.{compression}"
    src.write_bytes({"plain": data, "gzip": gzip.compress(data, 1),
                     "zstd": zstandard.ZstdCompressor().compress(data)}[compression])
    image = store.import_tarball(src, "bb:" + compression, message="hello", changes=['CMD ["sh"]'])
    assert image.tags == [f"bb:{compression}"]
    assert image.config["config"]["Cmd"] == ["sh"]
    assert image.config["history"][0]["comment"] == "hello"
    layer = store.layer_dir(image.diff_ids[0])
    assert (layer / "bin/busybox").stat().st_size == os.stat("/bin/busybox").st_size
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert image.manifest["layers"][0]["mediaType"].endswith({"plain": ".tar", "gzip": "+gzip",
                                                              "zstd": "+zstd"}[compression])
    # The diff id is the hash of the uncompressed tar, whatever the compression.
    assert image.diff_ids[0] == "sha256:" + __import__("hashlib").sha256(data).hexdigest()


def test_skopeo_and_umoci_read_the_store(store, busybox_tar):
    store.import_tarball(busybox_tar, "busybox:latest")
    store.tag("busybox", "team/tools:v1")
    layout = store.dir
    out = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:team/tools:v1"], check=True,
                                    capture_output=True, text=True).stdout)
    assert out["Digest"] == store.resolve("team/tools:v1").digest
    tags = subprocess.run(["umoci", "ls", "--layout", str(layout)], check=True, capture_output=True,
                          text=True).stdout.split()
    assert sorted(tags) == ["busybox:latest", "team/tools:v1"]
    stat = subprocess.run(["umoci", "stat", "--image", f"{layout}:busybox:latest"], check=True,
                          capture_output=True, text=True).stdout
    assert "berth import" in stat


def test_tags_resolve_by_name_digest_and_id_prefix(store, busybox_tar):
    image = store.import_tarball(busybox_tar, "busybox")
    assert store.resolve("busybox:latest").id == image.id
    assert store.resolve(image.id[7:19]).id == image.id
    assert store.resolve(f"busybox@{image.digest}").id == image.id
    other = store.import_tarball(busybox_tar, "busybox", message="again")  # the tag moves
    assert store.resolve("busybox").id == other.id != image.id
    assert [i.tags for i in store.list() if i.id == image.id] == [[]]  # the old one stays, untagged
    with pytest.raises(ImageNotFound, match="nope:latest|nope: image not known"):
        store.resolve("nope")


def test_rm_refused_while_used_then_gc_frees_layers(store, state_root, busybox_tar):
    image = store.import_tarball(busybox_tar, "busybox")
    layer = store.layer_dir(image.diff_ids[0])
    cdir = state_root / "containers" / "c1"
    rootfs = store.prepare_rootfs("busybox", cdir)
    assert rootfs["lowerdirs"] == [str(layer)]
    assert json.loads((cdir / "image.json").read_text())["image"] == image.id
    assert (cdir / "upper").is_dir() and (cdir / "work").is_dir()
    with pytest.raises(ImageInUse, match="c1"):
        store.remove("busybox")
    assert store.exists("busybox")
    store.remove("busybox", force=True)  # untagged, but the container keeps its layers
    assert not store.exists("busybox") and layer.is_dir()
    store.release_rootfs(cdir)  # last user gone: the layers go
    assert not layer.exists()
    assert list(store.blobs.iterdir()) == []
    assert json.loads((store.dir / "index.json").read_text())["manifests"] == []


def test_untag_keeps_image_with_other_tags_and_gc_removes_staging_leftovers(store, busybox_tar):
    store.import_tarball(busybox_tar, "a")
    store.tag("a", "b")
    assert store.remove("a") == {"untagged": ["a:latest"], "deleted": None}
    assert store.exists("b")
    (store.tmp / "layer-crashed").mkdir()  # what a crash mid-import leaves
    (store.tmp / "blob-crashed").write_bytes(b"x")
    result = store.gc()
    assert result["removed_blobs"] == 0 and list(store.tmp.iterdir()) == []
    assert store.exists("b")


def test_prepare_rootfs_outside_the_state_root_is_still_counted(store, busybox_tar, tmp_path):
    store.import_tarball(busybox_tar, "busybox")
    cdir = tmp_path / "elsewhere"
    store.prepare_rootfs("busybox", cdir)
    with pytest.raises(ImageInUse):
        store.remove("busybox")
    store.release_rootfs(cdir)
    store.remove("busybox")


def test_busybox_base_image_is_reproducible(tmp_path):
    from workers.engine.images.base import ensure_base_images

    ids = []
    for n in range(2):
        store = ImageStore(tmp_path / f"s{n}")
        assert ensure_base_images(store) == ["busybox:latest"]
        assert ensure_base_images(store) == []
        ids.append(store.resolve("busybox").id)
    assert ids[0] == ids[1]


def test_import_of_a_tarball_made_by_tar_c_dot(store, tmp_path):
    # `tar -C rootfs -c .` is the most common way to make a rootfs tarball; its first entry is './'.
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/hostname").write_text("dot\n")
    os.chmod(rootfs, 0o751)
    src = tmp_path / "dot.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(src), "."], check=True)
    assert subprocess.run(["tar", "-tf", str(src)], check=True, capture_output=True,
                          text=True).stdout.splitlines()[0] == "./"
    image = store.import_tarball(src, "dot:latest")
    layer = store.layer_dir(image.diff_ids[0])
    assert (layer / "etc/hostname").read_text() == "dot\n"
    assert os.stat(layer).st_mode & 0o7777 == 0o751  # the './' entry's metadata is the layer root's


def test_a_second_root_entry_is_a_duplicate(store):
    data = make_tar([entry("./", type=tarfile.DIRTYPE, mode=0o755), entry("./", type=tarfile.DIRTYPE, mode=0o777)])
    with pytest.raises(UnsafeEntry, match="duplicate entry"):
        store.import_tarball(io.BytesIO(data), "twice")
