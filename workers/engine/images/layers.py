"""Layers: staged (blob teed to a temp file, hashed both ways, unpacked into a temp dir), then renamed
into the store together with the manifests and tags of one operation, or all removed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .compression import decompressed, media_type
from .errors import DigestMismatch, RefTaken
from .expansion import Budget
from .fsutil import (
    HashingReader,
    atomic_write,
    atomic_write_json,
    canonical_json,
    flush_tree,
    fsync_dir,
    fsync_path,
    syncfs,
    write_all,
)
from .layout import REF_NAME
from .tarsafe import TarPolicy, extract

BLOB_BLOCK = 4 << 20  # a downloaded blob is hashed and written in blocks this big


@dataclass
class StagedLayer:
    """A layer blob and its unpacked dir, verified, waiting in images/tmp to be renamed in."""

    digest: str
    diff_id: str
    size: int
    diff_size: int
    media_type: str
    blob_tmp: str | None
    layer_tmp: str | None
    written: list[str] | None = None  # what unpacking made in layer_tmp, to flush one by one (None: syncfs)

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class _Txn:
    """Staged files of one operation; renamed in together, or all removed."""

    layers: list[StagedLayer] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (tmp path, digest) of whole blobs
    synced: bool = False  # the staged layer dirs are flushed already (syncfs outside the index lock)


class LayersMixin:
    """Part of ImageStore: staging layers and blobs and committing them with their tags."""

    # --- staging layers -----------------------------------------------------------------------------

    def _stage_layer(self, raw: BinaryIO, *, what: str, policy: TarPolicy | None = None,
                     expect_digest: str | None = None, expect_diff_id: str | None = None,
                     progress=None, total: int | None = None, keep_blob: bool = True,
                     budget: Budget | None = None, verified_digest: str | None = None,
                     behind: bool = False, sync_blob: bool = True) -> StagedLayer:
        """Read one layer stream: tee it to a temp blob, hash it both ways, unpack it into a temp dir.
        `verified_digest`: `raw` is a blob of the store, already checked to be that digest when it came in,
        so only the unpacked bytes are hashed (one hash per byte). `behind`: the blob's hash and tee in a thread
        of their own while this one unpacks (HashingReader). `sync_blob=False`: no fsync of the blob, for a
        caller whose commit flushes the whole filesystem anyway (_commit's syncfs, before anything is renamed in).
        """
        fd, blob_tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        layer_tmp = tempfile.mkdtemp(prefix="layer-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                outer = HashingReader(raw, tee=out if keep_blob else None, progress=progress, total=total,
                                      hashing=verified_digest is None, behind=behind)
                try:
                    kind, plain = decompressed(outer, what)
                    if budget is not None:
                        plain = budget.wrap(plain)
                    # plain and not verified: the diff id is the digest, hashed once by `outer`
                    inner = HashingReader(plain, hashing=kind != "plain" or verified_digest is not None)
                    os.chmod(layer_tmp, 0o755)
                    unpacked = extract(inner, layer_tmp, policy or self.policy, what)
                    inner.drain()
                    outer.drain()
                finally:
                    outer.abandon()  # a failed read leaves no thread behind (a whole one was finished by drain)
                if keep_blob:
                    out.flush()
                    if sync_blob:
                        os.fsync(out.fileno())
            digest = verified_digest or outer.digest
            diff_id = inner.digest if inner.hash is not None else outer.digest
            if expect_digest and digest != expect_digest:
                raise DigestMismatch(f"digest is {digest}, expected {expect_digest}", what)
            if expect_diff_id and diff_id != expect_diff_id:
                raise DigestMismatch(f"uncompressed digest is {diff_id}, the config says {expect_diff_id}",
                                     what)
            staged = StagedLayer(digest, diff_id, outer.count, inner.count, media_type(kind),
                                 blob_tmp if keep_blob else None, layer_tmp, unpacked.written)
            if not keep_blob:
                os.unlink(blob_tmp)
            return staged
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob_tmp)
            shutil.rmtree(layer_tmp, ignore_errors=True)
            raise

    def _stage_blob(self, raw: BinaryIO, *, what: str, expect_digest: str, size: int, progress=None) -> str:
        """Copy one blob to a temp file in images/tmp, hashing it on the way (the only pass over its bytes); its
        path once it is exactly `size` bytes hashing to `expect_digest`, else DigestMismatch (nothing kept)."""
        fd, blob_tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        try:
            h, count = hashlib.sha256(), 0
            while chunk := raw.read(BLOB_BLOCK):
                h.update(chunk)
                write_all(fd, chunk)
                count += len(chunk)
                if progress is not None:
                    progress(count, size)
            digest = "sha256:" + h.hexdigest()
            if count != size:
                raise DigestMismatch(f"size is {count}, the manifest says {size}", what)
            if digest != expect_digest:
                raise DigestMismatch(f"digest is {digest}, expected {expect_digest}", what)
            os.fsync(fd)  # the bytes are on disk before the blob gets its name
            return blob_tmp
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob_tmp)
            raise
        finally:
            os.close(fd)

    def _discard(self, txn: _Txn) -> None:
        for layer in txn.layers:
            if layer.blob_tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer.blob_tmp)
            if layer.layer_tmp:
                shutil.rmtree(layer.layer_tmp, ignore_errors=True)
        for tmp, _ in txn.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _commit(self, txn: _Txn) -> None:
        """Rename every staged blob and layer dir into place (caller holds the index lock)."""
        if not txn.synced:
            self._flush(txn)  # unpacked files reach the disk before their dir gets its final name
        for layer in txn.layers:
            if layer.blob_tmp:
                self._adopt(layer.blob_tmp, layer.digest)
                layer.blob_tmp = None
            if layer.layer_tmp:
                final = self.layer_dir(layer.diff_id)
                if final.exists():
                    shutil.rmtree(layer.layer_tmp, ignore_errors=True)
                else:
                    os.rename(layer.layer_tmp, final)
                layer.layer_tmp = None
            diff_meta = self.diffs / (layer.diff_id.split(":", 1)[1] + ".json")
            if not diff_meta.exists():
                atomic_write_json(diff_meta, {"size": layer.diff_size, "digest": layer.digest,
                                              "mediaType": layer.media_type})
        for tmp, digest in txn.files:
            self._adopt(tmp, digest)
        txn.files.clear()
        for digest, data in txn.blobs.items():
            path = self.blob_path(digest)
            if not path.exists():
                atomic_write(path, data)
        fsync_dir(self.layers)
        fsync_dir(self.blobs)

    def _flush(self, txn: _Txn) -> None:
        """The staged layer dirs and their kept blobs flushed: each one's files fsynced where its unpacking listed
        them (scoped to them: fsutil.flush_tree), else one syncfs for all."""
        staged = [layer for layer in txn.layers if layer.layer_tmp]
        if any(layer.written is None for layer in staged):
            syncfs(self.tmp)
            return
        for layer in staged:
            flush_tree(layer.layer_tmp, layer.written)
            if layer.blob_tmp:
                fsync_path(layer.blob_tmp)

    def _adopt(self, tmp: str, digest: str) -> None:
        path = self.blob_path(digest)
        if path.exists():
            os.unlink(tmp)
        else:
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)

    @staticmethod
    def _put_json(txn: _Txn, obj: dict[str, Any], media: str) -> dict[str, Any]:
        data = canonical_json(obj)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        txn.blobs[digest] = data
        return {"mediaType": media, "digest": digest, "size": len(data)}

    @staticmethod
    def _refuse_taken(index: dict[str, Any], tags: list[str | None]) -> None:
        """RefTaken for the first of `tags` the index already has (checked under the index lock, before
        anything is renamed in, so a refused write leaves the store as it was)."""
        have = {d.get("annotations", {}).get(REF_NAME) for d in index["manifests"]}
        for tag in tags:
            if tag is not None and tag in have:
                raise RefTaken(tag)

    def _finish(self, txn: _Txn, tags: list[tuple[str | None, dict[str, Any]]], replace: bool = True) -> None:
        """Rename everything in and move the tags, atomically as far as readers of index.json go. With
        `replace=False` a tag that exists already refuses the whole write (RefTaken)."""
        with self._lock("index"):
            if not replace:
                self._refuse_taken(self._read_index(), [tag for tag, _ in tags])
            self._commit(txn)
            index = self._read_index()
            for tag, descriptor in tags:
                self._set_tag(index, tag, descriptor)
            self._write_index(index)

    def ensure_layer(self, diff_id: str, blob: dict[str, Any]) -> None:
        """The layer dir of `diff_id` is there when this returns: see ensure_layers."""
        self.ensure_layers([(diff_id, blob)])

    def ensure_layers(self, layers: list[tuple[str, dict[str, Any]]]) -> None:
        """Every layer dir of `layers` (diff id, blob descriptor) is there when this returns: unpacked here from
        its verified blob, or waited for while another thread or process (a pull's background unpack) does it.
        The caller holds the gc lock (shared)."""
        from .unpack import ensure

        ensure(self, layers)
