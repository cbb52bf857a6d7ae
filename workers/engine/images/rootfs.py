"""Containers' root filesystems: overlay dirs from an image's layers, their release, export of the
merged tree, and commit of the upper dir as a new image."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from . import refs
from .changes import apply_changes
from .errors import ImageError
from .fsutil import atomic_write, atomic_write_json
from .layers import _Txn
from .layout import now_rfc3339
from .sources import _open_dest
from .tarsafe import TarPolicy
from .tarwrite import TarWriter, write_diff, write_merged

COMMIT_POLICY = TarPolicy(allow_devices=True, setuid="keep")  # a container's own upper dir


class RootfsMixin:
    """Part of ImageStore: what the store gives containers and takes back from them."""

    # --- containers -------------------------------------------------------------------------------------

    def prepare_rootfs(self, ref: str, container_dir: str | os.PathLike[str],
                       rw_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Give a container its overlay dirs: the image's layer dirs (topmost first) as lowers and its own
        empty `upper/` and `work/` (in `rw_dir`, e.g. a size-limited mount, else in the container dir).
        Nothing is copied. Records the use in `container_dir/image.json`."""
        cdir = Path(container_dir).resolve()
        rw = Path(rw_dir).resolve() if rw_dir is not None else cdir
        with self._lock("gc", shared=True):
            image = self.resolve(ref)
            self.ensure_layers(list(zip(image.diff_ids, image.manifest["layers"], strict=True)))
            with self._lock("index"):
                image = self._resolve(image.digest, self._read_index())  # not removed meanwhile
                lowers = [str(self.layer_dir(d)) for d in reversed(image.diff_ids)]
                upper, work = rw / "upper", rw / "work"
                cdir.mkdir(parents=True, exist_ok=True)
                upper.mkdir(mode=0o755, exist_ok=True)
                work.mkdir(mode=0o700, exist_ok=True)
                info = {"image": image.id, "manifest": image.digest, "ref": ref, "layers": image.diff_ids,
                        "lowerdirs": lowers, "upperdir": str(upper), "workdir": str(work)}
                atomic_write_json(cdir / "image.json", info)
                if cdir.parent != (self.state_root / "containers").resolve():
                    atomic_write(self.users_dir / self._user_key(cdir), str(cdir).encode())
        return {"lowerdirs": lowers, "upperdir": str(upper), "workdir": str(work), "config": image.config,
                "image_id": image.id}

    def release_rootfs(self, container_dir: str | os.PathLike[str]) -> None:
        """Drop the container's use of its image and remove its upper and work dirs."""
        cdir = Path(container_dir).resolve()
        manifest = None
        with self._lock("index"):
            with contextlib.suppress(OSError, ValueError):
                manifest = json.loads((cdir / "image.json").read_bytes()).get("manifest")
            with contextlib.suppress(FileNotFoundError):
                (cdir / "image.json").unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.users_dir / self._user_key(cdir)).unlink()
            still_listed = any(d["digest"] == manifest for d in self._read_index()["manifests"])
        for sub in ("upper", "work"):
            shutil.rmtree(cdir / sub, ignore_errors=True)
        if manifest and not still_listed:
            self.gc()  # the image was force-removed: its last user is gone, free its layers

    def _container(self, container_dir: str | os.PathLike[str]) -> dict[str, Any]:
        path = Path(container_dir) / "image.json"
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            raise ImageError(f"{container_dir}: no image.json, not a container made from an image") from None

    def export_container(self, container_dir: str | os.PathLike[str], dest: str | os.PathLike[str] | BinaryIO,
                         progress=None) -> int:
        """`docker export`: the container's merged filesystem as a tar stream; returns bytes written."""
        info = self._container(container_dir)
        layers = [info["upperdir"], *info["lowerdirs"]]
        with _open_dest(dest) as out:
            writer = TarWriter(out, progress=progress)
            write_merged(layers, writer)
            writer.close()
        return writer.written

    def commit(self, container_dir: str | os.PathLike[str], ref: str | None = None, *, author: str = "",
               message: str = "", changes: list[str] | tuple[str, ...] = (), progress=None,
               replace: bool = True) -> str:
        """`docker commit`: the upper dir becomes a new layer on top of the container's image; returns
        the new image id. With `replace=False` an existing `ref` refuses the commit (RefTaken)."""
        info = self._container(container_dir)
        tag = refs.tag_of(ref) if ref else None
        if not replace:
            self._refuse_taken(self._read_index(), [tag])
        txn = _Txn()
        with self._lock("gc", shared=True):
            try:
                parent_manifest = self.read_blob_json(info["manifest"])
                config = copy.deepcopy(self.read_blob_json(parent_manifest["config"]["digest"]))
                fd, tar_tmp = tempfile.mkstemp(prefix="commit-", dir=self.tmp)
                try:
                    with os.fdopen(fd, "wb") as out:
                        writer = TarWriter(out, progress=progress)
                        write_diff(info["upperdir"], writer)
                        writer.close()
                    with open(tar_tmp, "rb") as f:
                        txn.layers.append(self._stage_layer(f, what=f"commit of {container_dir}",
                                                            policy=COMMIT_POLICY))
                finally:
                    os.unlink(tar_tmp)
                layer = txn.layers[0]
                when = now_rfc3339()
                config["created"] = when
                if author:
                    config["author"] = author
                config["config"] = apply_changes(dict(config.get("config") or {}), list(changes))
                config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(layer.diff_id)
                entry = {"created": when, "created_by": "berth commit"}
                if author:
                    entry["author"] = author
                if message:
                    entry["comment"] = message
                config.setdefault("history", []).append(entry)
                manifest_desc = self._put_manifest(txn, config, [*parent_manifest["layers"], layer.descriptor])
                self._finish(txn, [(tag, manifest_desc)], replace=replace)
            finally:
                self._discard(txn)
        return self._image(manifest_desc["digest"], self._read_index()).id
