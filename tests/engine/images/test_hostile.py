"""Hostile input: one crafted archive per case. Each is refused with an error naming the entry, the
store is left exactly as it was, and nothing is written outside the target."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from workers.engine.images import CorruptArchive, DigestMismatch, MissingBlob, UnsafeEntry

from .conftest import entry, make_tar, sha, snapshot

pytestmark = pytest.mark.root


@pytest.fixture
def guarded(store, state_root, tmp_path):
    """Yield a checker asserting the store and the directory around it are unchanged."""
    store.import_tarball(io.BytesIO(make_tar([entry("etc/hostname", b"base\n")])), "base")
    before_store = snapshot(store.dir)
    before_around = snapshot(tmp_path)

    def check():
        assert snapshot(store.dir) == before_store
        assert snapshot(tmp_path) == before_around
        assert [i.tags for i in store.list()] == [["base:latest"]]

    return check


def _import_fails(store, data: bytes, exc, match: str, **kw):
    with pytest.raises(exc, match=match) as info:
        store.import_tarball(io.BytesIO(data), "evil", **kw)
    return info.value


def test_absolute_path(store, guarded, tmp_path):
    target = tmp_path / "pwned"
    err = _import_fails(store, make_tar([entry(str(target), b"x")]), UnsafeEntry, "absolute path")
    assert err.entry == str(target)
    assert not target.exists()
    guarded()


def test_dotdot_component(store, guarded, tmp_path):
    _import_fails(store, make_tar([entry("a/../../../pwned", b"x")]), UnsafeEntry,
                  r"a/\.\./\.\./\.\./pwned: '\.\.' component")
    guarded()


def test_symlink_escape_by_target(store, guarded):
    _import_fails(store, make_tar([entry("etc/evil", type=tarfile.SYMTYPE, linkname="../../../../etc/shadow")]),
                  UnsafeEntry, "etc/evil: symlink target .* escapes the root")
    guarded()


def test_symlink_with_empty_target_refused(store, guarded):
    # Linux has no empty symlink (symlink(2) answers ENOENT): the archive is refused by name, not crashed on.
    _import_fails(store, make_tar([entry("etc/empty", type=tarfile.SYMTYPE, linkname="")]),
                  UnsafeEntry, "etc/empty: symlink target is empty")
    guarded()


def test_write_through_symlink_refused(store, guarded, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(tmp_path)
    data = make_tar([entry("link", type=tarfile.SYMTYPE, linkname=str(outside)), entry("link/pwned", b"x")])
    _import_fails(store, data, UnsafeEntry, "link/pwned: parent 'link' is not a directory")
    assert not (outside / "pwned").exists()
    assert snapshot(tmp_path) == before
    assert list(store.tmp.iterdir()) == [] and [i.tags for i in store.list()] == [["base:latest"]]


def test_hardlink_escape(store, guarded):
    _import_fails(store, make_tar([entry("passwd", type=tarfile.LNKTYPE, linkname="/etc/passwd")]),
                  UnsafeEntry, "passwd: hard link target '/etc/passwd' refused")
    _import_fails(store, make_tar([entry("p2", type=tarfile.LNKTYPE, linkname="../../etc/passwd")]),
                  UnsafeEntry, "p2: hard link target")
    guarded()


def test_device_node(store, guarded):
    _import_fails(store, make_tar([entry("dev/sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)]),
                  UnsafeEntry, "dev/sda: device node refused")
    guarded()


def test_setuid_refused_by_default_and_stripped_on_request(store, guarded):
    data = make_tar([entry("bin/su", b"#!/bin/sh\n", mode=0o4755)])
    _import_fails(store, data, UnsafeEntry, "bin/su: setuid/setgid bit refused")
    guarded()
    from workers.engine.images import TarPolicy

    image = store.import_tarball(io.BytesIO(data), "stripped", policy=TarPolicy(setuid="strip"))
    assert (store.layer_dir(image.diff_ids[0]) / "bin/su").stat().st_mode & 0o7777 == 0o755


def test_duplicate_entry(store, guarded):
    _import_fails(store, make_tar([entry("etc/a", b"1"), entry("etc/a", b"2")]), UnsafeEntry,
                  "etc/a: duplicate entry")
    guarded()


def test_overlapping_entry(store, guarded):
    _import_fails(store, make_tar([entry("etc", b"file"), entry("etc/passwd", b"x")]), UnsafeEntry,
                  "etc/passwd: parent 'etc' is not a directory")
    guarded()


def test_truncated_archive(store, guarded):
    data = make_tar([entry("big", b"y" * 100_000)])
    _import_fails(store, data[:50_000], CorruptArchive, "truncated")
    _import_fails(store, data[:1024], CorruptArchive, "truncated")  # cut exactly after a header block
    guarded()


def test_corrupt_gzip(store, guarded):
    data = bytearray(gzip.compress(make_tar([entry("f", bytes(range(256)) * 400)])))
    data[len(data) // 2] ^= 0xFF
    _import_fails(store, bytes(data), CorruptArchive, "corrupt gzip|truncated|corrupt")
    _import_fails(store, gzip.compress(make_tar([entry("f", b"x")]))[:-10], CorruptArchive, "gzip")
    guarded()


def _docker_archive(layer: bytes, diff_id: str, config_name: str | None = None, layer_name="l/layer.tar") -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    name = config_name or sha(config)[7:] + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": ["evil:1"], "Layers": [layer_name]}]).encode()
    return make_tar([entry(name, config), entry("l/layer.tar", layer), entry("manifest.json", manifest)])


def test_digest_mismatch_layer(store, guarded):
    layer = make_tar([entry("f", b"x")])
    with pytest.raises(DigestMismatch, match="l/layer.tar: uncompressed digest is") as info:
        store.load(io.BytesIO(_docker_archive(layer, "sha256:" + "0" * 64)))
    assert info.value.entry == "l/layer.tar"
    guarded()


def test_digest_mismatch_config_name(store, guarded):
    layer = make_tar([entry("f", b"x")])
    with pytest.raises(DigestMismatch, match=f"{'1' * 64}.json: content digest"):
        store.load(io.BytesIO(_docker_archive(layer, sha(layer), config_name="1" * 64 + ".json")))
    guarded()


def test_manifest_points_to_missing_blob(store, guarded):
    layer = make_tar([entry("f", b"x")])
    with pytest.raises(MissingBlob, match="manifest.json: points to 'gone/layer.tar'"):
        store.load(io.BytesIO(_docker_archive(layer, sha(layer), layer_name="gone/layer.tar")))
    guarded()


def test_hostile_layer_inside_an_archive_leaves_no_staging(store, guarded):
    layer = make_tar([entry("ok", b"fine"), entry("/abs", b"x")])
    with pytest.raises(UnsafeEntry, match="/abs: absolute path"):
        store.load(io.BytesIO(_docker_archive(layer, sha(layer))))
    assert list(store.tmp.iterdir()) == []
    guarded()
