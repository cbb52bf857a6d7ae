"""The host's image store: an OCI image layout plus unpacked layer dirs, under `<state_root>/images/`.

    images/oci-layout, index.json, blobs/sha256/<hex>   the OCI layout (skopeo and umoci read it)
    images/layers/<diffid-hex>/                         each layer unpacked once, overlayfs-ready
    images/diffs/<diffid-hex>.json                      uncompressed size of a layer (for docker-archive)
    images/users/<key>                                  container dirs outside <state_root>/containers
    images/tmp/                                         staging; anything here is garbage after a crash

Who uses an image is read from each container's `image.json`, never counted, so it cannot drift.
Writers hold gc.lock shared for the whole operation and index.lock exclusively only while they
rename staged files in and rewrite index.json; gc holds both exclusively.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from . import refs
from .changes import apply_changes
from .compression import decompressed, media_type
from .errors import DigestMismatch, ImageError, ImageInUse, ImageNotFound, InvalidReference, RefTaken
from .expansion import Budget
from .fsutil import (
    HashingReader,
    atomic_write,
    atomic_write_json,
    canonical_json,
    fsync_dir,
    sha256_file,
    syncfs,
)
from .tarsafe import DEFAULT_POLICY, TarPolicy, extract
from .tarwrite import TarWriter, write_diff, write_merged

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMIT_POLICY = TarPolicy(allow_devices=True, setuid="keep")  # a container's own upper dir


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def host_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


@dataclass
class Image:
    id: str  # the config digest, as docker and podman call it
    digest: str  # the manifest digest
    tags: list[str]
    manifest: dict[str, Any]
    config: dict[str, Any]
    size: int  # manifest + config + layer blobs

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "Id": self.id, "Digest": self.digest, "RepoTags": self.tags, "Created": cfg.get("created"),
            "Author": cfg.get("author", ""), "Architecture": cfg.get("architecture"), "Os": cfg.get("os"),
            "Config": cfg.get("config", {}), "RootFS": cfg.get("rootfs", {}), "History": cfg.get("history", []),
            "Size": self.size, "Layers": [d["digest"] for d in self.manifest.get("layers", [])],
        }


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

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class _Txn:
    """Staged files of one operation; renamed in together, or all removed."""

    layers: list[StagedLayer] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (tmp path, digest) of whole blobs


class ImageStore:
    """An image store rooted at the host state root (`<root_dir>/images`)."""

    def __init__(self, root_dir: str | os.PathLike[str], policy: TarPolicy = DEFAULT_POLICY):
        self.state_root = Path(root_dir)
        self.dir = self.state_root / "images"
        self.blobs = self.dir / "blobs" / "sha256"
        self.layers = self.dir / "layers"
        self.diffs = self.dir / "diffs"
        self.users_dir = self.dir / "users"
        self.tmp = self.dir / "tmp"
        self.policy = policy
        for d in (self.blobs, self.layers, self.diffs, self.users_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("gc", "index"):
            (self.dir / f"{name}.lock").touch(mode=0o600)
        with self._lock("index"):
            if not (self.dir / "oci-layout").exists():
                atomic_write(self.dir / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            if not (self.dir / "index.json").exists():
                self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    # --- locking and index ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str, shared: bool = False) -> Iterator[None]:
        fd = os.open(self.dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> dict[str, Any]:
        return json.loads((self.dir / "index.json").read_bytes())

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write(self.dir / "index.json", json.dumps(index, indent=1).encode() + b"\n")

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            raise ImageError(f"unsupported digest {digest!r}")
        return self.blobs / hexd

    def read_blob_json(self, digest: str) -> dict[str, Any]:
        return json.loads(self.blob_path(digest).read_bytes())

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / diff_id.split(":", 1)[1]

    # --- lookup -------------------------------------------------------------------------------------

    def _image(self, manifest_digest: str, index: dict[str, Any]) -> Image:
        try:
            raw = self.blob_path(manifest_digest).read_bytes()
            manifest = json.loads(raw)
            config = self.read_blob_json(manifest["config"]["digest"])
        except FileNotFoundError as e:
            raise ImageNotFound(f"image {manifest_digest}: blob missing from the store ({e.filename})") from None
        tags = [d["annotations"][REF_NAME] for d in index["manifests"]
                if d["digest"] == manifest_digest and REF_NAME in d.get("annotations", {})]
        size = len(raw) + manifest["config"]["size"] + sum(lay["size"] for lay in manifest.get("layers", []))
        return Image(manifest["config"]["digest"], manifest_digest, tags, manifest, config, size)

    def list(self) -> list[Image]:
        index = self._read_index()
        seen: list[str] = []
        for d in index["manifests"]:
            if d["digest"] not in seen:
                seen.append(d["digest"])
        return [self._image(digest, index) for digest in seen]

    def resolve(self, ref: str) -> Image:
        """Find an image by `name[:tag]`, `name@sha256:…`, manifest digest, image id or id prefix."""
        index = self._read_index()
        return self._resolve(ref, index)

    def _resolve(self, ref: str, index: dict[str, Any]) -> Image:
        try:
            parsed = refs.parse(ref)
        except InvalidReference:
            parsed = None
        if parsed is not None and not parsed.digest:
            tag = f"{parsed.name}:{parsed.tag or 'latest'}"
            for d in index["manifests"]:
                if d.get("annotations", {}).get(REF_NAME) == tag:
                    return self._image(d["digest"], index)
        if parsed is not None and parsed.digest:
            for d in index["manifests"]:
                if d["digest"] == parsed.digest:
                    return self._image(d["digest"], index)
        if refs.HEX_PREFIX_RE.match(ref):
            want = ref if ref.startswith("sha256:") else "sha256:" + ref
            found = {}
            for d in index["manifests"]:
                if d["digest"].startswith(want):
                    found[d["digest"]] = d["digest"]
                    continue
                manifest = self.read_blob_json(d["digest"])
                if manifest["config"]["digest"].startswith(want):
                    found[d["digest"]] = d["digest"]
            if len(found) == 1:
                return self._image(next(iter(found)), index)
            if len(found) > 1:
                raise ImageError(f"{ref}: ambiguous image id prefix, {len(found)} images match")
        raise ImageNotFound(f"{ref}: image not known")

    def exists(self, ref: str) -> bool:
        try:
            self.resolve(ref)
            return True
        except ImageNotFound:
            return False

    def inspect(self, ref: str) -> dict[str, Any]:
        image = self.resolve(ref)
        out = image.to_dict()
        out["UsedBy"] = [u["container_dir"] for u in self.users() if u.get("manifest") == image.digest]
        return out

    # --- tags ---------------------------------------------------------------------------------------

    @staticmethod
    def _set_tag(index: dict[str, Any], tag: str | None, descriptor: dict[str, Any]) -> None:
        """Point `tag` (or nothing: a dangling image) at `descriptor`; an image losing its last tag stays
        listed untagged, as docker shows `<none>`."""
        manifests = index["manifests"]
        if tag is not None:
            old = [d for d in manifests if d.get("annotations", {}).get(REF_NAME) == tag]
            for d in old:
                manifests.remove(d)
                if d["digest"] != descriptor["digest"] and not any(m["digest"] == d["digest"] for m in manifests):
                    manifests.append({k: v for k, v in d.items() if k != "annotations"})
        entry = {"mediaType": OCI_MANIFEST, "digest": descriptor["digest"], "size": descriptor["size"]}
        if tag is None:
            if not any(m["digest"] == descriptor["digest"] for m in manifests):
                manifests.append(entry)
            return
        manifests[:] = [m for m in manifests if not (m["digest"] == descriptor["digest"] and REF_NAME not in
                                                     m.get("annotations", {}))]
        entry["annotations"] = {REF_NAME: tag}
        manifests.append(entry)

    def tag(self, source: str, target: str, *, replace: bool = True) -> Image:
        tag = refs.tag_of(target)
        with self._lock("index"):
            index = self._read_index()
            image = self._resolve(source, index)
            if not replace:
                self._refuse_taken(index, [tag])
            self._set_tag(index, tag, {"digest": image.digest, "size": self.blob_path(image.digest).stat().st_size})
            self._write_index(index)
        return self.resolve(tag)

    # --- users (reference counting from the containers' image.json) --------------------------------

    def _user_key(self, container_dir: Path) -> str:
        return hashlib.sha256(str(container_dir.resolve()).encode()).hexdigest()[:32]

    def users(self) -> list[dict[str, Any]]:
        """Every container's image.json: under <state_root>/containers, plus registered outside dirs."""
        dirs = set()
        containers = self.state_root / "containers"
        if containers.is_dir():
            dirs.update(p.resolve() for p in containers.iterdir() if p.is_dir())
        for link in self.users_dir.iterdir():
            with contextlib.suppress(OSError):
                dirs.add(Path(link.read_text().strip()))
        out = []
        for d in sorted(dirs):
            try:
                info = json.loads((d / "image.json").read_bytes())
            except (OSError, ValueError):
                continue
            info["container_dir"] = str(d)
            out.append(info)
        return out

    # --- staging layers -----------------------------------------------------------------------------

    def _stage_layer(self, raw: BinaryIO, *, what: str, policy: TarPolicy | None = None,
                     expect_digest: str | None = None, expect_diff_id: str | None = None,
                     progress=None, total: int | None = None, keep_blob: bool = True,
                     budget: Budget | None = None) -> StagedLayer:
        """Read one layer stream: tee it to a temp blob, hash it both ways, unpack it into a temp dir."""
        fd, blob_tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        layer_tmp = tempfile.mkdtemp(prefix="layer-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                outer = HashingReader(raw, tee=out if keep_blob else None, progress=progress, total=total)
                kind, plain = decompressed(outer, what)
                if budget is not None:
                    plain = budget.wrap(plain)
                inner = HashingReader(plain, hashing=kind != "plain")  # plain: the diff id is the digest
                os.chmod(layer_tmp, 0o755)
                extract(inner, layer_tmp, policy or self.policy, what)
                inner.drain()
                outer.drain()
                out.flush()
                os.fsync(out.fileno())
            diff_id = outer.digest if kind == "plain" else inner.digest
            if expect_digest and outer.digest != expect_digest:
                raise DigestMismatch(f"digest is {outer.digest}, expected {expect_digest}", what)
            if expect_diff_id and diff_id != expect_diff_id:
                raise DigestMismatch(f"uncompressed digest is {diff_id}, the config says {expect_diff_id}",
                                     what)
            staged = StagedLayer(outer.digest, diff_id, outer.count, inner.count, media_type(kind),
                                 blob_tmp if keep_blob else None, layer_tmp)
            if not keep_blob:
                os.unlink(blob_tmp)
            return staged
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob_tmp)
            shutil.rmtree(layer_tmp, ignore_errors=True)
            raise

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
        if any(layer.layer_tmp for layer in txn.layers):
            syncfs(self.tmp)  # unpacked files reach the disk before their dir gets its final name
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
        """Unpack a layer whose dir is missing (e.g. a layout written by another tool) from its blob."""
        if self.layer_dir(diff_id).exists():
            return
        txn = _Txn()
        try:
            with open(self.blob_path(blob["digest"]), "rb") as f:
                txn.layers.append(self._stage_layer(f, what=blob["digest"], expect_diff_id=diff_id,
                                                    keep_blob=False))
            with self._lock("index"):
                self._commit(txn)
        finally:
            self._discard(txn)

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
                inner = apply_changes({"Env": [DEFAULT_PATH]}, list(changes))
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
            for diff_id, blob in zip(image.diff_ids, image.manifest["layers"], strict=True):
                self.ensure_layer(diff_id, blob)
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


@contextlib.contextmanager
def _open_source(source) -> Iterator[tuple[BinaryIO, int | None]]:
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            import sys

            yield sys.stdin.buffer, None
            return
        with open(source, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size
    else:
        yield source, None


@contextlib.contextmanager
def _open_dest(dest) -> Iterator[BinaryIO]:
    """A path is written as `<path>.partial` and renamed when complete; a stream is written as is."""
    if isinstance(dest, (str, os.PathLike)):
        if str(dest) == "-":
            import sys

            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        partial = f"{dest}.partial"
        try:
            with open(partial, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.rename(partial, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
    else:
        yield dest


def blob_digest(path: str | os.PathLike[str]) -> str:
    return sha256_file(path)[0]
