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


@pytest.mark.timeout(60)
def test_a_sender_whose_stream_breaks_stops_reading_its_trees(source):
    # mutant: move_pieces.TreeSource.__exit__: `self.stop.set()` removed (the thread that reads the trees waits for
    # ever to hand over its next piece, and the sender with it: the test times out)
    import threading

    store, image, upper, volume = source

    class Breaks(io.BytesIO):
        def write(self, data):
            if self.tell() + len(data) > 100_000:  # inside the layer blob: the trees are being read ahead
                raise OSError("the control plane went away")
            return super().write(data)

    with pytest.raises(OSError, match="went away"):
        move_pack.write_pack(store, image.digest, "box:1", Breaks(), have=[], upper=upper, volumes={VID: volume})
    assert not [t for t in threading.enumerate() if t.name == "pack-trees"]
    assert not list(store.tmp.iterdir())  # nothing staged on the sender's disk


def members_of(pack: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(pack), mode="r|") as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf]


def pack_from(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.timeout(60)
def test_trees_travel_in_pieces_joined_back_in_order(source, tmp_path, monkeypatch):
    # mutant: move_pieces.Joined.read: `== (self.tree, self.index + 1)` -> `== (self.tree, self.index)` (a tree
    # ends after its first piece: its tar arrives cut and the next piece is an unexpected member)
    from workers.engine.containers import move_pieces

    monkeypatch.setattr(move_pieces, "PIECE", 4096)
    store, image, upper, volume = source
    (upper / "big.bin").write_bytes(os.urandom(50_000))
    (volume / "big.bin").write_bytes(os.urandom(30_000))
    pack = pack_of(store, image, upper, volume)
    names = [name for name, _ in members_of(pack)]
    uppers = [n for n in names if n.startswith("upper.tar/")]
    assert len(uppers) > 10 and uppers == [f"upper.tar/{i:06d}" for i in range(len(uppers))]
    assert f"volumes/{VID}.tar/000000" in names and "upper.tar" not in names
    _, got_upper, got_volume, got = receive(tmp_path, pack)
    assert (got_upper / "big.bin").read_bytes() == (upper / "big.bin").read_bytes()
    assert (got_volume / "big.bin").read_bytes() == (volume / "big.bin").read_bytes()
    assert "upper.tar" in got["digests"] and f"volumes/{VID}.tar" in got["digests"]


@pytest.mark.parametrize("edit", ["swap", "again", "whole"])
def test_pieces_out_of_order_twice_or_whole_are_refused(source, tmp_path, monkeypatch, edit):
    from workers.engine.containers import move_pieces

    monkeypatch.setattr(move_pieces, "PIECE", 4096)
    store, image, upper, volume = source
    (upper / "big.bin").write_bytes(os.urandom(20_000))
    members = members_of(pack_of(store, image, upper, volume))
    at = [i for i, (n, _) in enumerate(members) if n.startswith("upper.tar/")]
    if edit == "swap":  # pieces 1 and 2 of the upper dir change places
        members[at[1]], members[at[2]] = members[at[2]], members[at[1]]
    elif edit == "again":  # the upper dir's pieces sent a second time
        members[at[-1] + 1:at[-1] + 1] = [members[i] for i in at]
    else:  # the upper dir as one member, as a pack of an older sender had it
        whole = b"".join(members[i][1] for i in at)
        members[at[0]:at[-1] + 1] = [("upper.tar", whole)]
    # swapped: the tree's tar ends where its next piece is missing (truncated); the rest: a name not taken
    with pytest.raises(ImageError, match="truncated" if edit == "swap" else "unexpected member"):
        receive(tmp_path, pack_from(members))
    assert not list(ImageStore(tmp_path / "b").tmp.iterdir())


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
    # The sender deletes its copy once the receiver took the pack: every file and directory the receiver made (the
    # layer's, its blob, the upper dir's, the volume's) is fsynced before the layer dir is renamed in or the pack
    # taken; a few files are flushed one by one, not with a syncfs, which would also wait for whatever else is
    # dirty on the filesystem (a relay file of the control plane on the same disk: bench/move.py).
    # mutant: fsutil.flush_tree's loop body -> `pass` (nothing of the layer, upper dir or volume is fsynced)
    from workers.engine.images import fsutil, layers

    store, image, upper, volume = source
    pack = pack_of(store, image, upper, volume)
    fsynced, flushed = [], []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    monkeypatch.setattr(fsutil, "syncfs", lambda path: flushed.append(path))
    monkeypatch.setattr(layers, "syncfs", lambda path: flushed.append(path))
    dest, got_upper, got_volume, _ = receive(tmp_path, pack)
    assert flushed == []
    layer_tmp = {Path(p).parent.parent for p in fsynced if p.endswith("/bin/tool")}
    assert len(layer_tmp) == 1  # the layer's dir as it was unpacked, before its rename
    unpacked = layer_tmp.pop()
    for made in (unpacked, unpacked / "bin", unpacked / "bin" / "tool", unpacked / "payload.bin",
                 got_upper, got_upper / "etc", got_upper / "etc" / "conf", got_volume, got_volume / "data.txt"):
        assert str(made) in fsynced, made
    blob = image.manifest["layers"][0]["digest"]
    assert any(Path(p).parent == dest.tmp and Path(p).name.startswith("blob-") for p in fsynced)  # the layer's blob
    assert dest.blob_path(blob).exists()


def test_a_tree_of_many_files_is_flushed_with_one_syncfs(tmp_path, monkeypatch):
    # mutant: tarsafe.ExtractStats.wrote: `self.written = None` removed (a layer of 10k files would be fsynced one
    # by one, each a journal commit)
    from workers.engine.images import fsutil, tarsafe

    monkeypatch.setattr(tarsafe, "WRITTEN_MAX", 5)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for i in range(6):
            info = tarfile.TarInfo(f"f{i}")
            tar.addfile(info, io.BytesIO(b""))
    layer.seek(0)
    dest = tmp_path / "dest"
    dest.mkdir()
    stats = tarsafe.extract(layer, str(dest))
    assert stats.written is None
    flushed = []
    monkeypatch.setattr(fsutil, "syncfs", flushed.append)
    fsutil.flush_tree(dest, stats.written)
    assert flushed == [dest]
