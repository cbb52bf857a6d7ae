"""The store's OCI layout and index: what an image is, locking, reading and writing index.json,
looking images up, tags, and which containers use which image."""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import flocks
from ..timefmt import rfc3339
from . import refs
from .errors import ImageError, ImageNotFound, InvalidReference
from .fsutil import atomic_write

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def now_rfc3339() -> str:
    return rfc3339(digits=6)


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



class IndexMixin:
    """Part of ImageStore: locks, index.json, blobs, lookup, tags, users."""

    # --- locking and index ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str, shared: bool = False) -> Iterator[None]:
        with flocks.held(self.dir / f"{name}.lock", shared=shared):
            yield

    def _lock_fd(self, name: str, shared: bool = False) -> int:
        """The store lock `name` taken, as an open fd: held until flocks.release(fd) (for a lock that outlives
        the block that took it, e.g. the gc lock a pull's background unpack keeps until it is done)."""
        fd = flocks.take(self.dir / f"{name}.lock", shared=shared)
        assert fd is not None  # a blocking take holds the lock or raises
        return fd

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
        entry = {"mediaType": descriptor.get("mediaType", OCI_MANIFEST), "digest": descriptor["digest"],
                 "size": descriptor["size"]}  # a pulled Docker schema 2 manifest keeps its own type
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
            self._set_tag(index, tag, {"digest": image.digest, "size": self.blob_path(image.digest).stat().st_size,
                                      "mediaType": image.manifest.get("mediaType", OCI_MANIFEST)})
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
