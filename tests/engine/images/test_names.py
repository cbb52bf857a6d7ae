"""Writes that must not replace a name: with `replace=False` import, tag, commit and load refuse a ref the
store has, before anything moves (so a hostile archive never takes over another name space's ref); load
can rename the archive's tags; save can write other names than the store's refs."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from workers.engine.images import ImageError, RefTaken

pytestmark = pytest.mark.root


def rootfs(tmp_path, name: str, data: bytes):
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(f"etc/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def snapshot(store) -> tuple[bytes, list[str], list[str]]:
    """index.json, the blobs and the unpacked layers: all a write could change."""
    return ((store.dir / "index.json").read_bytes(), sorted(p.name for p in store.blobs.iterdir()),
            sorted(p.name for p in store.layers.iterdir()))


def test_import_and_tag_refuse_an_existing_ref_and_change_nothing(store, tmp_path):
    base = store.import_tarball(rootfs(tmp_path, "base", b"base\n"), "busybox:latest")
    other = store.import_tarball(rootfs(tmp_path, "other", b"other\n"), "u7/app:1")
    before = snapshot(store)
    with pytest.raises(RefTaken) as err:
        store.import_tarball(rootfs(tmp_path, "evil", b"evil\n"), "busybox:latest", replace=False)
    assert err.value.ref == "busybox:latest" and err.value.field == "ref"
    with pytest.raises(RefTaken):
        store.tag("u7/app:1", "busybox", replace=False)
    assert snapshot(store) == before
    assert store.resolve("busybox:latest").digest == base.digest and store.resolve("u7/app:1").digest == other.digest
    # A free ref is written as before.
    store.tag("busybox:latest", "u8/busybox:latest", replace=False)
    assert store.resolve("u8/busybox:latest").digest == base.digest


def test_load_renames_tags_and_refuses_all_of_it_when_one_is_taken(store, state_root, tmp_path):
    from workers.engine.images.store import ImageStore

    forge = ImageStore(tmp_path / "forge")
    forge.import_tarball(rootfs(tmp_path, "evil", b"evil\n"), "busybox:latest")
    forge.tag("busybox:latest", "app:1")
    archive = tmp_path / "forged.tar"
    forge.save(["busybox:latest", "app:1"], archive, format="docker-archive")

    base = store.import_tarball(rootfs(tmp_path, "base", b"base\n"), "busybox:latest")
    before = snapshot(store)
    # Loaded as is, without replace: refused whole; the store is as it was (no blob, no tag).
    with pytest.raises(RefTaken):
        store.load(archive, replace=False)
    assert snapshot(store) == before
    # Renamed into a name space: both tags land there, the base image is untouched.
    [img] = store.load(archive, rename=lambda t: f"u7/{t}", replace=False)
    assert sorted(img.tags) == ["u7/app:1", "u7/busybox:latest"]
    assert store.resolve("busybox:latest").digest == base.digest != img.digest
    # A rename may refuse a tag itself.

    def refuse(tag):
        raise ImageError(f"{tag}: not yours")

    with pytest.raises(ImageError, match="not yours"):
        store.load(archive, rename=refuse)
    # Again into the same name space: taken, refused.
    with pytest.raises(RefTaken):
        store.load(archive, rename=lambda t: f"u7/{t}", replace=False)

    # save writes the names asked for, not the store's scoped refs.
    out = tmp_path / "saved.tar"
    store.save(["u7/app:1"], out, format="docker-archive", names=["app:1"])
    with tarfile.open(out) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["app:1"]
