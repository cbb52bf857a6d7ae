"""save/load: docker-archive and oci-archive, several images per file, read by skopeo and umoci,
loaded back into a second state root with all their tags."""

from __future__ import annotations

import json
import subprocess

import pytest

from workers.engine.images import ImageStore

pytestmark = pytest.mark.root


@pytest.fixture
def two_images(store, busybox_tar):
    store.import_tarball(busybox_tar, "busybox")
    store.tag("busybox", "busybox:stable")
    gz = busybox_tar.parent / "again.tar"
    gz.write_bytes(busybox_tar.read_bytes())
    store.import_tarball(gz, "tools:v2", message="second image", changes=["ENV A=1"])
    return store


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_several_images_and_load_them_into_a_second_root(two_images, tmp_path, fmt):
    store = two_images
    archive = tmp_path / f"images.{fmt}"
    done = []
    store.save(["busybox:latest", "busybox:stable", "tools:v2"], archive, format=fmt,
               progress=lambda n, total: done.append((n, total)))
    assert done and done[-1][0] >= done[-1][1] > 0  # progress ends at (or past, headers) the total
    out = json.loads(subprocess.run(["skopeo", "inspect", f"{fmt}:{archive}:tools:v2"], check=True,
                                    capture_output=True, text=True).stdout)
    assert out["Env"][-1] == "A=1"
    second = ImageStore(tmp_path / "host2")
    loaded = second.load(archive)
    assert sorted(t for i in loaded for t in i.tags) == ["busybox:latest", "busybox:stable", "tools:v2"]
    for ref in ("busybox:latest", "busybox:stable", "tools:v2"):
        assert second.resolve(ref).id == store.resolve(ref).id  # same config bytes, same image id
    layer = second.layer_dir(second.resolve("tools:v2").diff_ids[0])
    assert (layer / "bin/busybox").is_file()


def test_oci_archive_unpacks_with_umoci(two_images, tmp_path):
    archive = tmp_path / "one.oci"
    two_images.save(["busybox"], archive, format="oci-archive")
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    assert subprocess.run(["umoci", "ls", "--layout", str(layout)], check=True, capture_output=True,
                          text=True).stdout.split() == ["busybox:latest"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:busybox:latest", str(bundle)], check=True,
                   capture_output=True)
    assert (bundle / "rootfs/bin/busybox").is_file()
    assert json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"], check=True,
                                     capture_output=True, text=True).stdout)["Layers"]


def test_load_from_skopeo_made_archives(two_images, tmp_path):
    """Archives written by skopeo itself (the other direction) load with their tag."""
    for fmt in ("docker-archive", "oci-archive"):
        dest = tmp_path / f"skopeo.{fmt}"
        ref = f"{fmt}:{dest}:made/by-skopeo:1"
        subprocess.run(["skopeo", "copy", "-q", f"oci:{two_images.dir}:busybox:latest", ref], check=True)
        second = ImageStore(tmp_path / f"h-{fmt}")
        loaded = second.load(dest)
        assert loaded[0].tags == ["made/by-skopeo:1"]
        assert (second.layer_dir(loaded[0].diff_ids[0]) / "bin/busybox").is_file()
