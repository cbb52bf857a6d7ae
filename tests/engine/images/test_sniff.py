"""Import is for root filesystem tarballs: a docker-archive or OCI archive (from save) given to import is refused
with NotARootfs, naming the format and pointing to load, and nothing is written; gzip-compressed too. A rootfs
that happens to hold a top-level manifest.json is still imported."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from workers.engine.images.errors import NotARootfs
from workers.engine.images.sniff import archive_format

pytestmark = pytest.mark.root


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_an_image_archive_given_to_import_is_refused(store, busybox_tar, tmp_path, fmt):
    store.import_tarball(busybox_tar, "busybox")
    archive = tmp_path / f"saved.{fmt}"
    store.save(["busybox:latest"], archive, format=fmt)
    squeezed = tmp_path / f"saved.{fmt}.gz"
    squeezed.write_bytes(gzip.compress(archive.read_bytes()))
    blobs_before = sorted(p.name for p in (store.dir / "blobs" / "sha256").iterdir())
    for given in (archive, squeezed):
        assert archive_format(given) == fmt
        with pytest.raises(NotARootfs) as err:
            store.import_tarball(given, "junk:1", replace=False)
        assert err.value.field == "file" and fmt in str(err.value) and "Load" in str(err.value)
        assert not store.exists("junk:1")
    assert sorted(p.name for p in (store.dir / "blobs" / "sha256").iterdir()) == blobs_before
    # The archive loads as it should.
    assert "again:latest" in [t for i in store.load(archive, rename=lambda t: "again:" + t.rpartition(":")[2])
                              for t in i.tags]


def test_a_rootfs_with_a_manifest_json_is_still_a_rootfs(store, busybox_tar, tmp_path):
    odd = tmp_path / "odd.tar"
    with tarfile.open(busybox_tar) as src, tarfile.open(odd, "w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        out.addfile(info, io.BytesIO(b"[]"))
    assert archive_format(odd) is None and archive_format(busybox_tar) is None
    image = store.import_tarball(odd, "odd:1", replace=False)
    assert "odd:1" in image.tags
