"""A move's pack (workers/engine/containers/move_pack.py) between two image stores, without containers: what goes
in comes out (blobs, a volume, the upper dir), each layer blob is checked once against its name as it is stored,
and a cut or altered pack is refused with nothing of it left in the receiving store."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from workers.engine.containers import move_pack
from workers.engine.images.errors import DigestMismatch, ImageError
from workers.engine.images.store import ImageStore

VID = "ab" * 32


@pytest.fixture
def source(tmp_path: Path):
    store = ImageStore(tmp_path / "a")
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, data in (("bin/tool", b"#!/bin/sh\necho tool\n"), ("payload.bin", os.urandom(2_500_000))):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    layer.seek(0)
    image = store.import_tarball(layer, "box:1")
    upper, volume = tmp_path / "upper", tmp_path / "volume"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "conf").write_text("tuned\n")
    volume.mkdir()
    (volume / "data.txt").write_text("kept\n")
    return store, image, upper, volume


def pack_of(store: ImageStore, image, upper: Path, volume: Path, have=()) -> bytes:
    out = io.BytesIO()
    move_pack.write_pack(store, image.digest, "box:1", out, have=list(have), upper=upper, volumes={VID: volume})
    return out.getvalue()


def receive(tmp_path: Path, pack: bytes) -> tuple[ImageStore, Path, Path, dict]:
    store = ImageStore(tmp_path / "b")
    upper, volume = tmp_path / "b-upper", tmp_path / "b-volume"

    def on_image(manifest: str, ref: str):
        upper.mkdir()
        return upper

    def volume_dir(vid: str):
        assert vid == VID
        volume.mkdir()
        return volume

    got = move_pack.read_pack(store, io.BytesIO(pack), volume_dir=volume_dir, on_image=on_image)
    return store, upper, volume, got


def test_what_goes_in_comes_out(source, tmp_path):
    store, image, upper, volume = source
    pack = pack_of(store, image, upper, volume)
    dest, got_upper, got_volume, got = receive(tmp_path, pack)
    assert got["manifest"] == image.digest
    assert (got_upper / "etc" / "conf").read_text() == "tuned\n"
    assert (got_volume / "data.txt").read_text() == "kept\n"
    layer = dest.layer_dir(image.diff_ids[0])
    assert (layer / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho tool\n"
    assert sorted(got) == sorted(["manifest", "digests"]) and len(got["digests"]) == 6  # head, 3 blobs, volume, upper
    assert not list(dest.tmp.iterdir()) and not list(store.tmp.iterdir())


def test_a_sender_whose_stream_breaks_keeps_no_staged_tree(source):
    # mutant: move_pack._Trees.__exit__: the final `os.unlink(future.result()[0])` -> `pass` (a tree made ahead,
    # never sent, stays in the store's tmp dir)
    store, image, upper, volume = source

    class Breaks(io.BytesIO):
        def write(self, data):
            if self.tell() + len(data) > 100_000:  # inside the layer blob: the trees are (being) made ahead
                raise OSError("the control plane went away")
            return super().write(data)

    with pytest.raises(OSError, match="went away"):
        move_pack.write_pack(store, image.digest, "box:1", Breaks(), have=[], upper=upper, volumes={VID: volume})
    assert not list(store.tmp.iterdir())


def test_a_cut_or_altered_pack_is_refused_and_leaves_nothing(source, tmp_path):
    # mutant: move_pack.PackReader._blob passes `expect_digest=None, expect_diff_id=None` to _stage_layer (a layer
    # blob is no longer checked against its name: the altered one is kept; since the pack reader no longer hashes
    # blob members itself, that check is the only one)
    store, image, upper, volume = source
    pack = pack_of(store, image, upper, volume)
    layer_digest = image.manifest["layers"][0]["digest"]
    start = pack.index(b"blobs/sha256/" + layer_digest[7:].encode())
    # a byte of the layer blob's tar padding (after its last member, before its end: unpacking does not see it)
    blob = store.blob_path(layer_digest).read_bytes()
    at = start + 512 + len(blob) - 1024 - 1
    assert pack[at] == 0
    for n, bad in enumerate((pack[: len(pack) // 2], pack[:at] + b"\x01" + pack[at + 1:])):
        with pytest.raises((ImageError, tarfile.TarError)):
            receive(tmp_path / str(n), bad)
        dest = ImageStore(tmp_path / str(n) / "b")
        assert not dest.blob_path(layer_digest).exists() and not dest.layer_dir(image.diff_ids[0]).exists()
        assert not list(dest.tmp.iterdir())
    with pytest.raises(DigestMismatch):
        receive(tmp_path / "again", pack[:at] + b"\x01" + pack[at + 1:])


def test_what_is_received_is_flushed_before_the_pack_is_taken(source, tmp_path, monkeypatch):
    # The sender deletes its copy once the receiver took the pack: the upper dir and each volume are flushed
    # (syncfs) once unpacked, and the layer's blob, not fsynced alone any more, goes to disk with the layer
    # dir's syncfs before it is renamed in (layers._commit).
    from workers.engine.images import layers

    store, image, upper, volume = source
    pack = pack_of(store, image, upper, volume)
    flushed, fsynced = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(move_pack, "syncfs", lambda path: flushed.append(Path(path).name))
    monkeypatch.setattr(layers, "syncfs", lambda path: flushed.append("store"))
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(os.fstat(fd).st_size) or real_fsync(fd))
    receive(tmp_path, pack)
    assert flushed == ["store", "b-volume", "b-upper"]
    assert fsynced and max(fsynced) < 2_500_000  # the manifest's and config's blobs, not the layer's
