"""Pull: manifest (an index or list resolved to one platform), config, then the layers in parallel, each
streamed into the store's staging (hashed once, size-capped) and renamed in only once its digest and size
match. Each verified blob is committed on its own, so an interrupted pull leaves the store as readable as
before and a retry fetches only the blobs it lacks; the tag moves last.

Layers unpack in the background (unpack.py): each as soon as its blob is in, in threads of this process that
go on after the pull returns; a container's first use waits for them. `unpack="inline"` is the one-pass pull
(each layer unpacked while it downloads, renamed in once its diff id matches too, done when the pull returns).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import DigestMismatch, ImageError, RegistryError, RegistryUnreachable
from .layers import _Txn
from .layout import host_arch
from .registry_client import RegistryClient
from .registry_ref import RegistryRef
from .unpack import Background

if TYPE_CHECKING:
    from .store import Image, ImageStore

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
}
MAX_JSON = 8 << 20  # a manifest or config bigger than this is not one
Progress = Callable[[dict[str, Any]], None]


@dataclass
class PullResult:
    image: Image
    digest: str  # the manifest digest (the platform's manifest, not the index's)
    index_digest: str | None  # the digest the tag pointed to, when it was an index
    fetched: list[str]  # layer digests downloaded
    reused: list[str]  # layer digests already in the store
    unpacking: Background | None = None  # the layers still unpacking in the background

    def wait_unpacked(self) -> None:
        """Until every layer this pull queued is unpacked (a first use waits by itself); the first error."""
        if self.unpacking is not None:
            self.unpacking.wait()


def parse_platform(platform: str | None) -> tuple[str, str, str | None]:
    """`linux/amd64`, `linux/arm64/v8`, `arm64` → (os, architecture, variant)."""
    if not platform:
        return "linux", host_arch(), None
    parts = platform.split("/")
    if len(parts) == 1:
        return "linux", parts[0], None
    if len(parts) > 3 or not all(parts):
        err = ImageError(f"invalid platform {platform!r}: os/arch[/variant], e.g. linux/amd64")
        err.code, err.field = "invalid", "platform"
        raise err
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_manifest(client: RegistryClient, ref: RegistryRef, reference: str, scope: str) -> tuple[bytes, str, str]:
    """(body, media type, digest); the digest is computed and checked against what was asked."""
    resp = client.request("GET", f"/v2/{ref.path}/manifests/{reference}", scope=scope, headers={"Accept": ACCEPT},
                          stream=True)
    with resp:
        body = resp.raw.read(MAX_JSON + 1, decode_content=True)
    if len(body) > MAX_JSON:
        raise RegistryError(f"{ref}: manifest larger than {MAX_JSON} bytes")
    digest = _digest(body)
    if reference.startswith("sha256:") and digest != reference:
        raise DigestMismatch(f"manifest digest is {digest}, expected {reference}", str(ref))
    header = resp.headers.get("Docker-Content-Digest", "")
    if header.startswith("sha256:") and header != digest:
        raise DigestMismatch(f"manifest digest is {digest}, the registry says {header}", str(ref))
    try:
        media = json.loads(body).get("mediaType") or resp.headers.get("Content-Type", "").split(";")[0]
    except ValueError:
        raise RegistryError(f"{ref}: the manifest is not JSON") from None
    return body, media, digest


def choose_platform(index: dict[str, Any], platform: str | None, ref: RegistryRef) -> dict[str, Any]:
    want_os, want_arch, want_variant = parse_platform(platform)
    found = []
    for desc in index.get("manifests", []):
        p = desc.get("platform") or {}
        if p.get("os") == want_os and p.get("architecture") == want_arch and \
                (want_variant is None or p.get("variant") == want_variant):
            found.append(desc)
    if not found:
        have = ", ".join(sorted({"/".join(filter(None, (d.get("platform", {}).get("os"),
                                                        d.get("platform", {}).get("architecture"),
                                                        d.get("platform", {}).get("variant"))))
                                 for d in index.get("manifests", [])})) or "none"
        err = ImageError(f"{ref}: no image for {want_os}/{want_arch}{'/' + want_variant if want_variant else ''}"
                         f" (the index has {have})")
        err.code, err.field = "no_such_image", "platform"
        raise err
    return found[0]


class _Capped:
    """A response body that may not run past its descriptor's size (a registry streaming without end), read
    from the socket in 1 MiB blocks whatever size the decompressor asks for (urllib3's small reads are slow)."""

    BLOCK = 1 << 20

    def __init__(self, raw, size: int, what: str) -> None:
        self.raw, self.left, self.what = raw, size, what
        self.buf, self.pos = b"", 0

    def read(self, n: int = -1) -> bytes:
        want = self.BLOCK if n is None or n < 0 else n
        if self.pos >= len(self.buf):
            self.pos = 0
            try:
                self.buf = self.raw.read(max(want, self.BLOCK))
            except Exception as e:  # urllib3's ProtocolError / IncompleteRead: the registry went away
                raise RegistryUnreachable(f"{self.what}: transfer cut short ({type(e).__name__})") from None
            self.left -= len(self.buf)
            if self.left < 0:
                raise DigestMismatch("the registry sent more bytes than the manifest's size", self.what)
        data = self.buf[self.pos:self.pos + want]
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True


def _fetch_json_blob(client: RegistryClient, ref: RegistryRef, desc: dict[str, Any], scope: str) -> bytes:
    if desc.get("size", 0) > MAX_JSON:
        raise RegistryError(f"{ref}: config blob larger than {MAX_JSON} bytes")
    resp = client.request("GET", f"/v2/{ref.path}/blobs/{desc['digest']}", scope=scope, stream=True)
    with resp:
        data = _Capped(resp.raw, desc["size"], desc["digest"]).read(MAX_JSON + 1)
    if _digest(data) != desc["digest"]:
        raise DigestMismatch(f"config digest is {_digest(data)}, expected {desc['digest']}", desc["digest"])
    return data


def pull(store: ImageStore, ref: RegistryRef, client: RegistryClient, *, platform: str | None = None,
         progress: Progress | None = None, workers: int = 4, tag: str | None = None,
         unpack: str = "background", unpack_progress: Progress | None = None) -> PullResult:
    """Pull `ref` into `store` and tag it `tag` (default: Docker's familiar name, e.g. `nginx:latest`).

    It returns once every blob is verified (digest and size) and in the store's OCI layout and the tag is
    written: the image can be listed, inspected, pushed, saved, read by skopeo and run. With
    `unpack="background"` its layers are unpacking meanwhile (their "extracting" events go to
    `unpack_progress`); a first use waits for them (see unpack.py). `unpack="inline"`: one pass, every layer
    unpacked when this returns."""
    if unpack not in ("background", "inline"):
        raise ValueError(f"unpack must be background or inline, not {unpack!r}")
    inline = unpack == "inline"
    scope = f"repository:{ref.path}:pull"
    emit = progress or (lambda event: None)
    body, media, digest = fetch_manifest(client, ref, ref.reference, scope)
    index_digest = None
    if media in INDEXES:
        index_digest = digest
        chosen = choose_platform(json.loads(body), platform, ref)
        body, media, digest = fetch_manifest(client, ref, chosen["digest"], scope)
    if media not in MANIFESTS:
        err = RegistryError(f"{ref}: unsupported manifest type {media or 'unknown'!r} (Docker schema 2 and OCI "
                            f"are supported; schema 1 is long deprecated)")
        raise err
    manifest = json.loads(body)
    layers = manifest.get("layers", [])
    for desc in layers:
        if desc.get("mediaType") not in LAYER_TYPES:
            raise RegistryError(f"{ref}: unsupported layer type {desc.get('mediaType')!r}")
    emit({"status": "resolved", "digest": digest, "layers": [
        {"id": d["digest"], "total": d["size"]} for d in layers]})
    with store._lock("gc", shared=True):
        config_desc = manifest["config"]
        try:
            config_bytes = store.blob_path(config_desc["digest"]).read_bytes()
        except FileNotFoundError:
            config_bytes = _fetch_json_blob(client, ref, config_desc, scope)
        config = json.loads(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise RegistryError(f"{ref}: the config lists {len(diff_ids)} layers, the manifest {len(layers)}")
        background = None if inline else Background(store, progress=unpack_progress)
        try:
            todo, reused = [], []
            for desc, diff_id in zip(layers, diff_ids, strict=True):
                if store.blob_path(desc["digest"]).exists() and (not inline or store.layer_dir(diff_id).exists()):
                    reused.append(desc["digest"])
                    if background is not None:
                        background.add(diff_id, desc)  # a blob whose unpack never ended (a crash) is redone
                    emit({"status": "exists", "id": desc["digest"], "current": desc["size"], "total": desc["size"]})
                elif all(desc["digest"] != d["digest"] for d, _ in todo):
                    todo.append((desc, diff_id))

            def fetch(item: tuple[dict[str, Any], str]) -> None:
                desc, diff_id = item
                what = desc["digest"]
                emit({"status": "downloading", "id": what, "current": 0, "total": desc["size"]})

                def shown(n: int, total: int | None) -> None:
                    emit({"status": "downloading", "id": what, "current": n, "total": total})

                txn = _Txn()
                try:
                    resp = client.request("GET", f"/v2/{ref.path}/blobs/{what}", scope=scope, stream=True)
                    with resp:
                        stream = _Capped(resp.raw, desc["size"], what)
                        if inline:
                            txn.layers.append(store._stage_layer(stream, what=what, expect_digest=what,
                                                                 expect_diff_id=diff_id, total=desc["size"],
                                                                 progress=shown))
                            if txn.layers[0].size != desc["size"]:
                                raise DigestMismatch(f"size is {txn.layers[0].size}, the manifest says "
                                                     f"{desc['size']}", what)
                        else:
                            txn.files.append((store._stage_blob(stream, what=what, expect_digest=what,
                                                                size=desc["size"], progress=shown), what))
                    with store._lock("index"):
                        store._commit(txn)
                finally:
                    store._discard(txn)
                if background is not None:
                    background.add(diff_id, desc)
                emit({"status": "complete", "id": what, "current": desc["size"], "total": desc["size"]})

            if todo:
                with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
                    for future in [pool.submit(fetch, item) for item in todo]:
                        future.result()
            txn = _Txn()
            txn.blobs[config_desc["digest"]] = config_bytes
            txn.blobs[digest] = body
            store._finish(txn, [(tag if tag is not None else ref.local_tag,
                                 {"mediaType": media, "digest": digest, "size": len(body)})])
        finally:
            if background is not None:
                background.close()
    image = store._image(digest, store._read_index())
    emit({"status": "done", "digest": digest, "id": image.id})
    return PullResult(image, digest, index_digest, [d["digest"] for d, _ in todo], reused, background)
