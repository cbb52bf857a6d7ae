"""A container's move pack: what one host sends another to recreate a container (issue 18, move and copy).

One plain tar stream (framed by pack_tar.py: a member's data passes as it is, not through tarfile's stream
buffers), members in this order:

    image.json                  {"manifest": <digest>, "ref": <engine ref>} of the container's image
    blobs/sha256/<hex>          each blob of that image the receiver lacks (manifest and config always)
    volumes/<engine id>.tar/N   a named volume's data, as a tar of its data dir, in pieces N = 000000, 000001, ...
    upper.tar/N                 the container's upper dir as an OCI layer (whiteouts as `.wh.` entries), in pieces
    digests.json                sha256 of every member above (of a tree: of its pieces joined), written last

The receiver checks each blob against its name as it arrives and every member against digests.json at
the end: a pack that does not match fails as a whole (its caller removes what it made). Nested tars are
extracted with the store's hostile-input rules (tarsafe), never followed out of their target dir. Only the
names above are accepted. Memory is constant. The writer stages nothing: blobs go from the store into the
stream, trees are read into pieces as they are sent (move_pieces.py). The reader works on a stream still being
sent (it needs no length and reads on to the end once the trailer is in) and hashes each blob once, as the
store keeps it. Django-free (the worker's handlers/move.py drives it)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from ..images.errors import DigestMismatch, ImageError
from ..images.fsutil import HashingReader, flush_tree, read_full
from ..images.layers import _Txn
from ..images.rootfs import COMMIT_POLICY
from ..images.store import ImageStore
from ..images.tarsafe import extract
from . import move_pieces, pack_tar
from .pack_tar import PackError, PackTarReader

CHUNK = 1 << 20
BLOB_RE = re.compile(r"blobs/sha256/([0-9a-f]{64})")
VOLUME_RE = re.compile(r"volumes/([0-9a-f]{64})\.tar")


def have_blobs(store: ImageStore) -> list[str]:
    """Every blob digest this host's store holds (what a sender may leave out)."""
    return sorted("sha256:" + p.name for p in store.blobs.iterdir() if len(p.name) == 64)


def image_blobs(store: ImageStore, manifest_digest: str) -> list[str]:
    """The image's blobs: its manifest, config and layers."""
    manifest = store.read_blob_json(manifest_digest)
    return [manifest_digest, manifest["config"]["digest"], *(d["digest"] for d in manifest.get("layers", []))]


def _add_file(out: BinaryIO, name: str, path: str | os.PathLike[str]) -> int:
    """A blob of the store as member `name`; returns its size."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        out.write(pack_tar.header(name, size))
        left = size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise ImageError(f"blob {name[13:25]} shrank while it was sent", "pack")
            out.write(chunk)
            left -= len(chunk)
    out.write(pack_tar.padding(size))
    return size


def _add_chunks(out: BinaryIO, name: str, chunks: list) -> None:
    size = sum(len(c) for c in chunks)
    out.write(pack_tar.header(name, size))
    for chunk in chunks:
        out.write(chunk)
    out.write(pack_tar.padding(size))


def write_pack(store: ImageStore, manifest_digest: str, ref: str, out: BinaryIO, *, have: set[str] | list[str],
               upper: str | os.PathLike[str] | None, volumes: dict[str, str | os.PathLike[str]],
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the pack of a stopped container to `out`; returns what was sent (bytes by kind, blobs sent
    and left out). `have` is the receiver's blob digests; `volumes` maps a volume's engine id to its data dir."""
    have = set(have)
    digests: dict[str, str] = {}
    sent = {"blobs": 0, "volumes": 0, "upper": 0}
    blobs_sent, blobs_kept = [], []
    trees = [(f"volumes/{vid}.tar", d, "volumes") for vid, d in sorted(volumes.items())]
    if upper is not None:
        trees.append(("upper.tar", upper, "upper"))
    with move_pieces.TreeSource(trees) as pieces:
        head = json.dumps({"manifest": manifest_digest, "ref": ref}).encode()
        _add_chunks(out, "image.json", [head])
        digests["image.json"] = "sha256:" + hashlib.sha256(head).hexdigest()
        blobs = image_blobs(store, manifest_digest)
        for i, digest in enumerate(blobs):
            if i >= 2 and digest in have:  # manifest and config always: the receiver reads them first
                blobs_kept.append(digest)
                continue
            if progress:
                progress(f"sending blob {digest[7:19]}")
            name = f"blobs/sha256/{digest[7:]}"
            sent["blobs"] += _add_file(out, name, store.blob_path(digest))
            digests[name] = digest
            blobs_sent.append(digest)
        for name, piece, end in pieces.items():
            if end is not None:  # a tree's last piece went
                digests[name], size, kind = end
                sent[kind] += size
                continue
            if progress and name.endswith("/000000"):
                progress(f"sending {name[:-7]}")
            assert piece is not None
            _add_chunks(out, name, piece)
        _add_chunks(out, "digests.json", [json.dumps(digests, sort_keys=True).encode()])
        out.write(pack_tar.END)
    return {"sent": sent, "blobs_sent": blobs_sent, "blobs_kept": blobs_kept}


class PackReader:
    """Read a pack from `stream` into this host: `on_image(manifest_digest, ref)` is called once every blob
    is in the store (it makes the container and returns its empty upper dir), `volume_dir(engine id)` gives a
    volume's empty data dir. `run()` returns the image's manifest digest and the members' digests."""

    def __init__(self, store: ImageStore, stream: BinaryIO, *,
                 volume_dir: Callable[[str], str | os.PathLike[str]],
                 on_image: Callable[[str, str], str | os.PathLike[str]]) -> None:
        self.store, self.stream = store, stream
        self.volume_dir, self.on_image = volume_dir, on_image
        self.head: dict[str, Any] | None = None
        self.image_ready = False
        self.got: dict[str, str] = {}
        self.txn = _Txn()  # layers unpacked as their blobs arrive, renamed in together before the create
        self.diff_ids: dict[str, str] = {}  # layer blob digest -> its diff id (from the manifest and config)

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.store._discard(self.txn)

    def _run(self) -> dict[str, Any]:
        trailer = None
        pack = PackTarReader(self.stream)
        member = pack.next()
        while member is not None:
            name = member[0]
            if name == "digests.json":
                trailer = json.loads(_whole(pack, 1 << 20, name))
                break
            blob = BLOB_RE.fullmatch(name)
            piece = move_pieces.piece_of(name)
            if blob and self.head is not None and not self.image_ready:
                self.got[name] = self._blob("sha256:" + blob.group(1), pack)  # hashed once, as it is stored
            elif piece is not None and piece[1] == 0 and piece[0] not in self.got:
                joined = move_pieces.Joined(pack, piece[0])
                reader = HashingReader(joined, behind=True)  # a tree's hash beside its unpacking
                try:
                    self._tree_member(piece[0], reader)
                    reader.drain()
                finally:
                    reader.abandon()
                self.got[piece[0]] = reader.digest
                member = joined.after
                continue
            elif name == "image.json" and self.head is None:
                data = _whole(pack, 1 << 20, name)
                self._head(data)
                self.got[name] = "sha256:" + hashlib.sha256(data).hexdigest()
            else:
                raise PackError(f"unexpected member {name[:80]!r}")
            member = pack.next()
        if trailer is None or self.head is None:
            raise PackError("the pack ended early (no digests.json): send it again")
        while self.stream.read(CHUNK):  # to its end: a stream still being sent is then whole at its sender too
            pass
        if not self.image_ready:
            self._image()
        if trailer != self.got:
            bad = sorted(k for k in set(trailer) | set(self.got) if trailer.get(k) != self.got.get(k))
            raise DigestMismatch(f"the pack does not match its digests: {', '.join(bad)[:200]}", "pack")
        return {"manifest": self.head["manifest"], "digests": self.got}

    def _head(self, data: bytes) -> None:
        head = json.loads(data)
        if not isinstance(head, dict) or not re.fullmatch(r"sha256:[0-9a-f]{64}", str(head.get("manifest"))):
            raise PackError("image.json names no manifest digest")
        self.head = {"manifest": head["manifest"], "ref": str(head.get("ref") or "")}

    def _tree_member(self, tree: str, reader: HashingReader) -> None:
        if self.head is None:
            raise PackError(f"{tree[:80]!r} before image.json")
        if not self.image_ready:
            self._image()
        volume = VOLUME_RE.fullmatch(tree)
        if volume:
            self._tree(reader, self.volume_dir(volume.group(1)), tree)
        elif tree == "upper.tar":
            self._tree(reader, self.upper, tree)
        else:
            raise PackError(f"unexpected member {tree[:80]!r}")

    def _blob(self, digest: str, raw: BinaryIO) -> str:
        """Store one blob member read from `raw`, checked against its name; returns its digest."""
        path = self.store.blob_path(digest)
        if path.exists():
            while raw.read(CHUNK):  # this host has it (checked when it came): skipped
                pass
            return digest
        if not self.diff_ids:
            self._learn_layers()
        if digest in self.diff_ids:  # one pass: the blob is kept and unpacked as it streams in, both checked
            self.txn.layers.append(self.store._stage_layer(raw, what=f"layer {digest[7:19]} of the pack",
                                                           expect_digest=digest, expect_diff_id=self.diff_ids[digest],
                                                           behind=True, sync_blob=False))  # synced with its layer dir
            return digest
        reader = HashingReader(raw)
        fd, tmp = tempfile.mkstemp(prefix="blob-", dir=self.store.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if reader.digest != digest:
                raise DigestMismatch(f"blob is {reader.digest}, its name says {digest}", "pack")
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest

    def _learn_layers(self) -> None:
        """Once the manifest and the config are in the store: which blobs are layers, and their diff ids."""
        assert self.head is not None
        try:
            manifest = self.store.read_blob_json(self.head["manifest"])
            config = self.store.read_blob_json(manifest["config"]["digest"])
        except FileNotFoundError:
            return
        self.diff_ids = {blob["digest"]: diff_id for blob, diff_id in
                         zip(manifest.get("layers", []), config.get("rootfs", {}).get("diff_ids", []), strict=False)}

    def _image(self) -> None:
        """Every blob is here: unpack missing layer dirs, then let the caller make the container."""
        assert self.head is not None
        if self.txn.layers:
            with self.store._lock("index"):
                self.store._commit(self.txn)
        digest = self.head["manifest"]
        missing = [d for d in image_blobs_safe(self.store, digest) if not self.store.blob_path(d).exists()]
        if missing:
            raise PackError(f"the pack lacks blobs this host does not have: {', '.join(m[7:19] for m in missing)}")
        manifest = self.store.read_blob_json(digest)
        config = self.store.read_blob_json(manifest["config"]["digest"])
        self.store.ensure_layers(list(zip(config["rootfs"]["diff_ids"], manifest["layers"], strict=True)))
        self.upper = self.on_image(digest, self.head["ref"])
        self.image_ready = True

    @staticmethod
    def _tree(reader: HashingReader, dest: str | os.PathLike[str], what: str) -> None:
        dest = str(dest)
        if any(os.scandir(dest)):
            raise PackError(f"{what}: its target dir on this host is not empty")
        unpacked = extract(reader, dest, COMMIT_POLICY, what)
        flush_tree(dest, unpacked.written)  # on disk before the sender deletes its copy


def _whole(pack: PackTarReader, limit: int, name: str) -> bytes:
    """A small member's data, whole (a stream gives it in as many reads as it likes)."""
    data = read_full(pack, limit + 1)
    if len(data) > limit:
        raise PackError(f"{name} is larger than {limit} bytes")
    return data


def image_blobs_safe(store: ImageStore, manifest_digest: str) -> list[str]:
    try:
        return image_blobs(store, manifest_digest)
    except FileNotFoundError:
        raise PackError(f"the pack lacks the image's manifest or config ({manifest_digest[7:19]})") from None


def read_pack(store: ImageStore, stream: BinaryIO, *, volume_dir: Callable[[str], str | os.PathLike[str]],
              on_image: Callable[[str, str], str | os.PathLike[str]]) -> dict[str, Any]:
    """Receive a pack (see PackReader)."""
    return PackReader(store, stream, volume_dir=volume_dir, on_image=on_image).run()


def tag_image(store: ImageStore, manifest_digest: str, ref: str) -> str | None:
    """Give the received image its name here if the name is free (or already this image's); else keep it
    untagged (a dangling image the container uses). Returns the tag given, or None."""
    from ..images.layout import REF_NAME

    size = store.blob_path(manifest_digest).stat().st_size
    desc = {"digest": manifest_digest, "size": size}
    index = store._read_index()
    taken = {d.get("annotations", {}).get(REF_NAME): d["digest"] for d in index["manifests"]}
    tag = ref if ref and taken.get(ref, manifest_digest) == manifest_digest else None
    store._finish(_Txn(), [(tag, desc)])
    return tag


__all__ = ["PackError", "have_blobs", "image_blobs", "read_pack", "tag_image", "write_pack"]
