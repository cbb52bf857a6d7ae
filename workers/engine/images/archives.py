"""docker-archive and oci-archive: save one or several images to one file, load them back with their tags.

Loading stages every member of the outer archive in images/tmp (hashed as it is read), checks every
manifest, config and layer digest, unpacks the layers into temp dirs, and only then renames it all in
and moves the tags; any error removes the staging dir and leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any, BinaryIO

from . import archive_docs as docs
from . import refs
from .compression import decompressed
from .errors import ArchiveError, CorruptArchive, DigestMismatch, MissingBlob, UnsafeEntry
from .expansion import Budget
from .fsutil import CHUNK, HashingReader, HashingWriter
from .store import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME, Image, _open_dest, _open_source, _Txn
from .tarsafe import TarPolicy, _strict_tarinfo, normalize_name

if TYPE_CHECKING:
    from .store import ImageStore

FORMATS = ("oci-archive", "docker-archive")


# --- save ---------------------------------------------------------------------------------------------

def _member(out, name: str, size: int, src=None, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    if data is not None:
        out.write(data)
    else:
        remaining = size
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise ArchiveError(f"source shorter than its recorded size {size}", name)
            out.write(chunk)
            remaining -= len(chunk)
    if size % tarfile.BLOCKSIZE:
        out.write(b"\0" * (-size % tarfile.BLOCKSIZE))


def _diff_size(store: ImageStore, diff_id: str, blob: dict[str, Any]) -> int:
    meta = store.diffs / (diff_id.split(":", 1)[1] + ".json")
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads(meta.read_bytes())["size"]
    with open(store.blob_path(blob["digest"]), "rb") as f:
        _, plain = decompressed(f, blob["digest"])
        size = 0
        while chunk := plain.read(CHUNK):
            size += len(chunk)
    return size


def save_archive(store: ImageStore, names: list[str], dest, format: str = "oci-archive", progress=None,
                 *, as_names: list[str | None] | None = None) -> None:
    """Save the images `names` resolve to; `as_names` (one per name) are the tags to write instead."""
    if format not in FORMATS:
        raise ArchiveError(f"unknown format {format!r}: use oci-archive or docker-archive")
    if not names:
        raise ArchiveError("no image to save")
    if as_names is not None and len(as_names) != len(names):
        raise ArchiveError("one archive name per image is needed")
    images: list[tuple[str | None, Image]] = []
    for i, name in enumerate(names):
        image = store.resolve(name)
        try:
            tag = refs.tag_of(name) if refs.tag_of(name) in image.tags else None
        except Exception:
            tag = None
        if as_names is not None:
            tag = refs.tag_of(as_names[i]) if as_names[i] else None
        images.append((tag, image))
    with _open_dest(dest) as raw:
        if format == "oci-archive":
            _save_oci(store, images, raw, progress)
        else:
            _save_docker(store, images, raw, progress)


def _save_oci(store: ImageStore, images, raw: BinaryIO, progress) -> None:
    blobs: list[str] = []
    manifests = []
    for tag, image in images:
        size = store.blob_path(image.digest).stat().st_size
        entry = {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": size}
        if tag:
            entry["annotations"] = {REF_NAME: tag}
        manifests.append(entry)
        for digest in (image.digest, image.manifest["config"]["digest"],
                       *(lay["digest"] for lay in image.manifest["layers"])):
            if digest not in blobs:
                blobs.append(digest)
    total = sum(store.blob_path(d).stat().st_size for d in blobs)
    out = HashingWriter(raw, progress=progress, total=total)
    layout = b'{"imageLayoutVersion":"1.0.0"}'
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    _member(out, "oci-layout", len(layout), data=layout)
    _member(out, "index.json", len(index), data=index)
    for digest in blobs:
        path = store.blob_path(digest)
        with open(path, "rb") as f:
            _member(out, f"blobs/sha256/{path.name}", os.fstat(f.fileno()).st_size, src=f)
    out.write(b"\0" * 1024)


def _save_docker(store: ImageStore, images, raw: BinaryIO, progress) -> None:
    manifest, repositories, written = [], {}, set()
    plan: list[tuple[str, str, dict, int]] = []  # (member name, diff id, blob descriptor, size)
    configs: list[tuple[str, bytes]] = []
    for tag, image in images:
        config_hex = image.id.split(":", 1)[1]
        layer_names = []
        for diff_id, blob in zip(image.diff_ids, image.manifest["layers"], strict=True):
            name = f"{diff_id.split(':', 1)[1]}/layer.tar"
            layer_names.append(name)
            if name not in written:
                written.add(name)
                plan.append((name, diff_id, blob, _diff_size(store, diff_id, blob)))
        if f"{config_hex}.json" not in written:
            written.add(f"{config_hex}.json")
            configs.append((f"{config_hex}.json", store.blob_path(image.id).read_bytes()))
        manifest.append({"Config": f"{config_hex}.json", "RepoTags": [tag] if tag else [], "Layers": layer_names})
        if tag and image.diff_ids:
            name, _, t = tag.rpartition(":")
            repositories.setdefault(name, {})[t] = image.diff_ids[-1].split(":", 1)[1]
    total = sum(p[3] for p in plan)
    out = HashingWriter(raw, progress=progress, total=total)
    for name, data in configs:
        _member(out, name, len(data), data=data)
    for name, diff_id, blob, size in plan:
        with open(store.blob_path(blob["digest"]), "rb") as f:
            _, plain = decompressed(f, blob["digest"])
            hashing = HashingReader(plain)
            _member(out, name, size, src=hashing)
        if hashing.digest != diff_id:
            raise DigestMismatch(f"stored layer does not match its diff id {diff_id}", blob["digest"])
    for name, obj in (("manifest.json", manifest), ("repositories", repositories)):
        data = json.dumps(obj).encode()
        _member(out, name, len(data), data=data)
    out.write(b"\0" * 1024)


# --- load ---------------------------------------------------------------------------------------------

class _Staged:
    """The outer archive's regular files, staged on disk with their sha256 and size."""

    def __init__(self, root: str):
        self.root = root
        self.files: dict[str, tuple[str, str, int]] = {}  # name -> (path, digest, size)
        self.links: dict[str, str] = {}

    def get(self, name: str, what: str) -> tuple[str, str, int]:
        rel = normalize_name(name, "archive member")
        for _ in range(8):  # docker's legacy format links duplicate layers to one another
            if rel in self.links:
                rel = self.links[rel]
                continue
            if rel in self.files:
                return self.files[rel]
            break
        raise MissingBlob(f"points to {name!r}, which is not in the archive", what)

    def json(self, name: str, what: str) -> Any:
        path, _, _ = self.get(name, what)
        try:
            with open(path, "rb") as f:
                return json.load(f)
        except ValueError as e:
            raise CorruptArchive(f"invalid JSON ({e})", name) from None


def _stage_archive(stream: BinaryIO, staging: str, what: str, budget: Budget) -> _Staged:
    staged = _Staged(staging)
    _, plain = decompressed(stream, what)
    plain = budget.wrap(plain)
    try:
        tf = tarfile.open(fileobj=plain, mode="r|", bufsize=CHUNK, tarinfo=_strict_tarinfo(what))
    except tarfile.ReadError as e:
        raise CorruptArchive(f"not a tar archive ({e})", what) from None
    with tf:
        n = 0
        for member in tf:
            tf.members.clear()
            rel = normalize_name(member.name, "archive member")
            if member.isdir():
                continue
            if rel in staged.files or rel in staged.links:
                raise UnsafeEntry("duplicate entry", member.name)
            if member.issym() or member.islnk():
                target = member.linkname
                base = os.path.dirname(rel) if member.issym() else ""
                staged.links[rel] = normalize_name(os.path.normpath(os.path.join(base, target))
                                                   if not target.startswith("/") else target, "link target")
                continue
            if not member.isreg():
                raise UnsafeEntry("unexpected entry type in an image archive", member.name)
            n += 1
            path = os.path.join(staging, f"m{n}")
            src = tf.extractfile(member)
            h = hashlib.sha256()
            with open(path, "wb") as out:
                remaining = member.size
                while remaining:
                    chunk = src.read(min(CHUNK, remaining))
                    if not chunk:
                        raise CorruptArchive("truncated member", member.name)
                    h.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
            staged.files[rel] = (path, "sha256:" + h.hexdigest(), member.size)
    return staged


def load_archive(store: ImageStore, source, progress=None, policy: TarPolicy | None = None,
                 max_expanded: int | None = None, *, rename=None, replace: bool = True) -> list[Image]:
    """`docker load` (see ImageStore.load for `rename` and `replace`). `max_expanded` caps the bytes the
    archive and its layers expand to, together."""
    what = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
    budget = Budget(max_expanded, what)
    txn = _Txn()
    staging = tempfile.mkdtemp(prefix="load-", dir=store.tmp)
    results: list[tuple[str | None, dict[str, Any]]] = []
    try:
        with store._lock("gc", shared=True):
            with _open_source(source) as (raw, total):
                counted = HashingReader(raw, progress=progress, total=total)
                staged = _stage_archive(counted, staging, what, budget)
            if "index.json" in staged.files and "oci-layout" in staged.files:
                plans = _plan_oci(staged)
            elif "manifest.json" in staged.files:
                plans = _plan_docker(staged)
            else:
                raise CorruptArchive("neither an OCI archive (index.json) nor a docker archive (manifest.json)",
                                     what)
            for plan in plans:  # names first: a refused name costs no unpacking
                plan["tags"] = [rename(t) for t in plan["tags"]] if rename is not None else plan["tags"]
            if not replace:
                store._refuse_taken(store._read_index(), [t for plan in plans for t in plan["tags"]])
            unpacked: set[str] = set()
            for plan in plans:
                layers = []
                for layer_name, desc, diff_id in plan["layers"]:
                    path, digest, size = staged.get(layer_name, plan["what"])
                    if desc.get("digest") and desc["digest"] != digest:
                        raise DigestMismatch(f"content digest is {digest}, the manifest says {desc['digest']}",
                                             layer_name)
                    if desc.get("size") is not None and desc["size"] != size:
                        raise DigestMismatch(f"size is {size}, the manifest says {desc['size']}", layer_name)
                    layers.append({"mediaType": desc.get("mediaType") or _guess_media(path),
                                   "digest": digest, "size": size})
                    if diff_id in unpacked:
                        continue
                    unpacked.add(diff_id)
                    have = store.layer_dir(diff_id).exists() and store.blob_path(digest).exists()
                    with open(path, "rb") as f:
                        layer = store._stage_layer(f, what=layer_name, policy=policy, expect_diff_id=diff_id,
                                                   keep_blob=False, budget=budget)
                    if have:
                        shutil.rmtree(layer.layer_tmp, ignore_errors=True)
                        layer.layer_tmp = None
                    else:
                        txn.files.append((path, digest))  # the staged member is the blob: rename it in
                    txn.layers.append(layer)
                config_bytes = plan["config_bytes"]
                config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
                txn.blobs[config_digest] = config_bytes
                if plan.get("manifest_bytes"):
                    manifest_bytes = plan["manifest_bytes"]
                else:
                    manifest_bytes = json.dumps({
                        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                        "layers": layers}, sort_keys=True, separators=(",", ":")).encode()
                manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
                txn.blobs[manifest_digest] = manifest_bytes
                desc = {"digest": manifest_digest, "size": len(manifest_bytes)}
                for tag in plan["tags"] or [None]:
                    results.append((tag, desc))
            store._finish(txn, results, replace=replace)
    finally:
        store._discard(txn)
        shutil.rmtree(staging, ignore_errors=True)
    index = store._read_index()
    seen, out = set(), []
    for _, desc in results:
        if desc["digest"] not in seen:
            seen.add(desc["digest"])
            out.append(store._image(desc["digest"], index))
    return out


def _guess_media(path: str) -> str:
    from .compression import detect, media_type

    with open(path, "rb") as f:
        kind, _ = detect(f)
    return media_type(kind)


def _tags(names: list[str], what: str) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(refs.tag_of(name))
        except refs.InvalidReference as e:
            raise CorruptArchive(f"invalid tag {name!r} ({e})", what) from None
    return out


def _plan_docker(staged: _Staged) -> list[dict[str, Any]]:
    manifest = docs.array(staged.json("manifest.json", "manifest.json"), "manifest.json", "manifest.json")
    if not manifest:
        raise CorruptArchive("lists no image", "manifest.json")
    plans = []
    for i, entry in enumerate(manifest):
        config_name, layer_names, repo_tags = docs.docker_entry(entry, i)
        path, digest, _ = staged.get(config_name, "manifest.json")
        expected_hex = os.path.basename(config_name).removesuffix(".json")
        if len(expected_hex) == 64 and "sha256:" + expected_hex != digest:
            raise DigestMismatch(f"content digest is {digest}, its name says sha256:{expected_hex}", config_name)
        with open(path, "rb") as f:
            config_bytes = f.read()
        try:
            config = json.loads(config_bytes)
        except ValueError as e:
            raise CorruptArchive(f"invalid JSON ({e})", config_name) from None
        diff_ids = docs.diff_ids(config, config_name)
        if len(diff_ids) != len(layer_names):
            raise CorruptArchive(f"{len(layer_names)} layers but the config lists {len(diff_ids)} diff ids",
                                 config_name)
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            desc: dict[str, Any] = {}
            if name.startswith("blobs/sha256/"):
                desc["digest"] = "sha256:" + os.path.basename(name)
            layers.append((name, desc, diff_id))
        plans.append({"what": "manifest.json", "layers": layers, "config_bytes": config_bytes,
                      "tags": _tags(repo_tags, "manifest.json")})
    return plans


def _plan_oci(staged: _Staged) -> list[dict[str, Any]]:
    index = docs.obj(staged.json("index.json", "index.json"), "index.json", "index.json")
    manifests = docs.array(index.get("manifests", []), "index.json's manifests", "index.json")
    if not manifests:
        raise CorruptArchive("lists no image", "index.json")
    plans = []
    for i, desc in enumerate(manifests):
        desc = docs.descriptor(desc, f"manifests[{i}]", "index.json")
        plans.extend(_plan_oci_descriptor(staged, desc, desc.get("annotations", {})))
    return plans


def _blob(staged: _Staged, desc: dict[str, Any], what: str) -> bytes:
    digest = desc.get("digest", "")
    if not refs.DIGEST_RE.match(digest):
        raise CorruptArchive(f"unsupported or invalid digest {digest!r}", what)
    name = "blobs/sha256/" + digest.split(":", 1)[1]
    path, actual, size = staged.get(name, what)
    if actual != digest:
        raise DigestMismatch(f"content digest is {actual}", name)
    if desc.get("size") is not None and desc["size"] != size:
        raise DigestMismatch(f"size is {size}, the descriptor says {desc['size']}", name)
    with open(path, "rb") as f:
        return f.read()


def _plan_oci_descriptor(staged: _Staged, desc: dict[str, Any], annotations: dict[str, str],
                         depth: int = 0) -> list[dict]:
    data = _blob(staged, desc, "index.json")
    where = desc["digest"]
    try:
        doc = docs.obj(json.loads(data), "the manifest", where)
    except ValueError as e:
        raise CorruptArchive(f"invalid JSON ({e})", where) from None
    if doc.get("mediaType") == OCI_INDEX or "manifests" in doc:
        # A multi-platform index: take this host's platform, else the first manifest.
        from .store import host_arch

        nested = [docs.descriptor(m, f"manifests[{i}]", where)
                  for i, m in enumerate(docs.array(doc.get("manifests"), "the index's manifests", where))]
        if not nested or depth >= 4:
            raise CorruptArchive("an image index with no manifest (or nested too deep)", where)
        chosen = [m for m in nested
                  if isinstance(m.get("platform"), dict) and m["platform"].get("architecture") == host_arch()]
        return _plan_oci_descriptor(staged, (chosen or nested)[0], annotations, depth + 1)
    config_desc = docs.descriptor(doc.get("config"), "the manifest's config", where)
    doc_layers = [docs.descriptor(lay, f"layers[{i}]", where)
                  for i, lay in enumerate(docs.array(doc.get("layers", []), "the manifest's layers", where))]
    config_bytes = _blob(staged, config_desc, where)
    try:
        config = json.loads(config_bytes)
    except ValueError as e:
        raise CorruptArchive(f"invalid JSON ({e})", config_desc["digest"]) from None
    diff_ids = docs.diff_ids(config, config_desc["digest"])
    if len(diff_ids) != len(doc_layers):
        raise CorruptArchive("layer count differs from the config's diff ids", desc["digest"])
    layers = [("blobs/sha256/" + lay["digest"].split(":", 1)[1], lay, diff_id)
              for lay, diff_id in zip(doc_layers, diff_ids, strict=True)]
    ref = annotations.get(REF_NAME)
    if ref is not None and not isinstance(ref, str):
        raise CorruptArchive(f"the {REF_NAME} annotation must be a string", "index.json")
    if ref and ":" not in ref and "/" not in ref and annotations.get("io.containerd.image.name"):
        ref = annotations["io.containerd.image.name"]
    return [{"what": desc["digest"], "layers": layers, "config_bytes": config_bytes, "manifest_bytes": data,
             "tags": _tags([ref] if ref else [], "index.json")}]
