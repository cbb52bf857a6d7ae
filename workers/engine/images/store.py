"""The host's image store: an OCI image layout plus unpacked layer dirs, under `<state_root>/images/`.

    images/oci-layout, index.json, blobs/sha256/<hex>   the OCI layout (skopeo and umoci read it)
    images/layers/<diffid-hex>/                         each layer unpacked once, overlayfs-ready
    images/diffs/<diffid-hex>.json                      uncompressed size of a layer (for docker-archive)
    images/users/<key>                                  container dirs outside <state_root>/containers
    images/locks/<diffid-hex>.lock                      held by whoever unpacks that layer (unpack.py)
    images/tmp/                                         staging; anything here is garbage after a crash

Who uses an image is read from each container's `image.json`, never counted, so it cannot drift.
Writers hold gc.lock shared for the whole operation and index.lock exclusively only while they
rename staged files in and rewrite index.json; gc holds both exclusively.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from ..defaults import PATH_ENV
from . import refs
from .changes import apply_changes
from .errors import ImageInUse, InvalidReference
from .expansion import Budget
from .fsutil import atomic_write, sha256_file
from .layers import LayersMixin, StagedLayer, _Txn
from .layout import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME, Image, IndexMixin, host_arch, now_rfc3339
from .rootfs import COMMIT_POLICY, RootfsMixin
from .sources import _open_dest, _open_source
from .tarsafe import DEFAULT_POLICY, TarPolicy

__all__ = ["COMMIT_POLICY", "OCI_CONFIG", "OCI_INDEX", "OCI_MANIFEST", "REF_NAME", "Image",
           "ImageStore", "StagedLayer", "_Txn", "_open_dest", "_open_source", "blob_digest", "host_arch",
           "now_rfc3339"]



class ImageStore(IndexMixin, LayersMixin, RootfsMixin):
    """An image store rooted at the host state root (`<root_dir>/images`); the layout and index, layers and
    containers' root filesystems are in layout.py, layers.py and rootfs.py; here: import, load, save, remove, gc."""

    def __init__(self, root_dir: str | os.PathLike[str], policy: TarPolicy = DEFAULT_POLICY):
        self.state_root = Path(root_dir)
        self.dir = self.state_root / "images"
        self.blobs = self.dir / "blobs" / "sha256"
        self.layers = self.dir / "layers"
        self.diffs = self.dir / "diffs"
        self.users_dir = self.dir / "users"
        self.tmp = self.dir / "tmp"
        self.locks = self.dir / "locks"
        self.policy = policy
        for d in (self.blobs, self.layers, self.diffs, self.users_dir, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("gc", "index"):
            (self.dir / f"{name}.lock").touch(mode=0o600)
        with self._lock("index"):
            if not (self.dir / "oci-layout").exists():
                atomic_write(self.dir / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            if not (self.dir / "index.json").exists():
                self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    # --- import ---------------------------------------------------------------------------------------

    def import_tarball(self, source: str | os.PathLike[str] | BinaryIO, ref: str | None = None, *,
                       message: str = "", changes: list[str] | tuple[str, ...] = (), progress=None,
                       created: str | None = None, policy: TarPolicy | None = None,
                       history: str | None = None, max_expanded: int | None = None, replace: bool = True) -> Image:
        """`docker import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.
        `max_expanded` caps its decompressed size (TooLarge past it; nothing is kept). With `replace=False`
        an existing `ref` refuses the import (RefTaken), checked first and again when the tag is written."""
        tag = refs.tag_of(ref) if ref else None
        if not replace:
            self._refuse_taken(self._read_index(), [tag])
        if isinstance(source, (str, os.PathLike)) and str(source) != "-":
            from .sniff import refuse_image_archive

            refuse_image_archive(source)  # a docker save file is not a root filesystem: Load it
        what = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
        what = str(what)
        txn = _Txn()
        with self._lock("gc", shared=True):
            try:
                with _open_source(source) as (stream, total):
                    txn.layers.append(self._stage_layer(stream, what=what, policy=policy, progress=progress,
                                                        total=total, budget=Budget(max_expanded, what)))
                layer = txn.layers[0]
                when = created or now_rfc3339()
                inner = apply_changes({"Env": [PATH_ENV]}, list(changes))
                config = {
                    "created": when, "architecture": host_arch(), "os": "linux", "config": inner,
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                    "history": [{"created": when, "created_by": history or f"berth import {what}",
                                 **({"comment": message} if message else {})}],
                }
                manifest_desc = self._put_manifest(txn, config, [layer.descriptor])
                self._finish(txn, [(tag, manifest_desc)], replace=replace)
            finally:
                self._discard(txn)
        return self._image(manifest_desc["digest"], self._read_index())

    def _put_manifest(self, txn: _Txn, config: dict[str, Any], layers: list[dict[str, Any]],
                      annotations: dict[str, str] | None = None) -> dict[str, Any]:
        config_desc = self._put_json(txn, config, OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layers}
        if annotations:
            manifest["annotations"] = annotations
        return self._put_json(txn, manifest, OCI_MANIFEST)

    # --- load / save (archives.py holds the formats) ------------------------------------------------

    def load(self, source: str | os.PathLike[str] | BinaryIO, progress=None,
             policy: TarPolicy | None = None, max_expanded: int | None = None, *, rename=None,
             replace: bool = True) -> list[Image]:
        """Load an archive's images and tags. `rename(tag) -> tag` maps each of the archive's tags to
        the one written here (it may raise ImageError to refuse); `replace=False` refuses the whole load
        when any written tag exists already (RefTaken), before anything is moved. `max_expanded` caps the
        bytes the archive and its layers expand to."""
        from .archives import load_archive

        return load_archive(self, source, progress=progress, policy=policy, max_expanded=max_expanded,
                            rename=rename, replace=replace)

    def save(self, images: list[str], dest: str | os.PathLike[str] | BinaryIO, format: str = "oci-archive",
             progress=None, *, names: list[str | None] | None = None) -> None:
        """Save `images` (refs here); `names`, one per image, are the tags written into the archive
        instead of the refs (e.g. a user-facing name; None writes the image untagged)."""
        from .archives import save_archive

        save_archive(self, images, dest, format=format, progress=progress, as_names=names)

    # --- remove and gc ----------------------------------------------------------------------------------

    def remove(self, ref: str, force: bool = False) -> dict[str, Any]:
        """Untag `ref`; when it was the image's last name (or `ref` is an id) remove the image.

        Refused while a container uses the image unless `force` (then the image is untagged but its
        layers stay until its last container is gone)."""
        with self._lock("index"):
            index = self._read_index()
            image = self._resolve(ref, index)
            try:
                by_tag = refs.tag_of(ref) in image.tags
            except InvalidReference:
                by_tag = False
            if by_tag and len(image.tags) > 1:
                tag = refs.tag_of(ref)
                index["manifests"] = [d for d in index["manifests"]
                                      if d.get("annotations", {}).get(REF_NAME) != tag]
                self._write_index(index)
                return {"untagged": [tag], "deleted": None}
            users = [u["container_dir"] for u in self.users() if u.get("manifest") == image.digest]
            if users and not force:
                names = ", ".join(Path(u).name for u in users)
                raise ImageInUse(f"image {ref} ({image.id[7:19]}) is in use by container(s) {names}: "
                                 f"remove them first or force")
            index["manifests"] = [d for d in index["manifests"] if d["digest"] != image.digest]
            self._write_index(index)
        freed = self.gc()
        return {"untagged": image.tags, "deleted": image.id, "gc": freed}

    def gc(self) -> dict[str, Any]:
        """Remove blobs, layer dirs and staging files that no image and no container references."""
        removed_blobs, removed_layers, freed = 0, 0, 0
        with self._lock("gc"), self._lock("index"):
            index = self._read_index()
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set()
            manifests = {d["digest"] for d in index["manifests"]}
            for user in self.users():
                if user.get("manifest"):
                    manifests.add(user["manifest"])
                keep_layers.update(d.split(":", 1)[1] for d in user.get("layers", []))
            for digest in manifests:
                keep_blobs.add(digest)
                try:
                    manifest = self.read_blob_json(digest)
                    keep_blobs.add(manifest["config"]["digest"])
                    keep_blobs.update(lay["digest"] for lay in manifest.get("layers", []))
                    config = self.read_blob_json(manifest["config"]["digest"])
                    keep_layers.update(d.split(":", 1)[1] for d in config.get("rootfs", {}).get("diff_ids", []))
                except FileNotFoundError:
                    continue
            for blob in self.blobs.iterdir():
                if ("sha256:" + blob.name) not in keep_blobs:
                    freed += blob.lstat().st_size
                    blob.unlink()
                    removed_blobs += 1
            for layer in self.layers.iterdir():
                if layer.name not in keep_layers:
                    shutil.rmtree(layer, ignore_errors=True)
                    removed_layers += 1
            for meta in self.diffs.iterdir():
                if meta.name.removesuffix(".json") not in keep_layers:
                    meta.unlink()
            for lock in self.locks.iterdir():  # every holder of a layer lock holds gc.lock shared too
                if lock.name.removesuffix(".lock") not in keep_layers:
                    lock.unlink()
            for link in self.users_dir.iterdir():
                with contextlib.suppress(OSError):
                    if not (Path(link.read_text().strip()) / "image.json").exists():
                        link.unlink()
            for leftover in self.tmp.iterdir():  # no writer runs while gc.lock is held exclusively
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()
        return {"removed_blobs": removed_blobs, "removed_layers": removed_layers, "freed_bytes": freed}


def blob_digest(path: str | os.PathLike[str]) -> str:
    return sha256_file(path)[0]
