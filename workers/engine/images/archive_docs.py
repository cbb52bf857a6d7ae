"""Shape checks for the JSON documents inside a docker-archive or OCI archive (manifest.json, index.json,
image manifests, configs). They are attacker input: every field the loader reads is checked here first, so
a malformed one is refused with a CorruptArchive that names the document and the field, never an
AttributeError/KeyError from deep inside the loader (and never stored, to break later reads)."""

from __future__ import annotations

from typing import Any

from . import refs
from .errors import CorruptArchive


def obj(value: Any, what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CorruptArchive(f"{what} must be a JSON object, not {_kind(value)}", where)
    return value


def array(value: Any, what: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CorruptArchive(f"{what} must be a JSON list, not {_kind(value)}", where)
    return value


def string(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise CorruptArchive(f"{what} must be a non-empty string, not {_kind(value)}", where)
    return value


def strings(value: Any, what: str, where: str) -> list[str]:
    items = array(value, what, where)
    for i, item in enumerate(items):
        string(item, f"{what}[{i}]", where)
    return items


def descriptor(value: Any, what: str, where: str) -> dict[str, Any]:
    """An OCI content descriptor: a sha256 digest and a size (both required by the image spec)."""
    desc = obj(value, what, where)
    digest = desc.get("digest")
    if not isinstance(digest, str) or not refs.DIGEST_RE.match(digest):
        raise CorruptArchive(f"{what} has no valid sha256 digest (got {_short(digest)})", where)
    size = desc.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise CorruptArchive(f"{what} has no valid size (got {_short(size)})", where)
    if "mediaType" in desc and not isinstance(desc["mediaType"], str):
        raise CorruptArchive(f"{what}'s mediaType must be a string", where)
    if "annotations" in desc:
        obj(desc["annotations"], f"{what}'s annotations", where)
    return desc


def diff_ids(config: Any, where: str) -> list[str]:
    """rootfs.diff_ids of an image config, checked."""
    config = obj(config, "the image config", where)
    rootfs = obj(config.get("rootfs", {}), "the config's rootfs", where)
    ids = strings(rootfs.get("diff_ids", []), "the config's rootfs.diff_ids", where)
    for i, diff_id in enumerate(ids):
        if not refs.DIGEST_RE.match(diff_id):
            raise CorruptArchive(f"rootfs.diff_ids[{i}] is not a sha256 digest", where)
    return ids


def docker_entry(value: Any, i: int) -> tuple[str, list[str], list[str]]:
    """(Config, Layers, RepoTags) of the i-th entry of a docker-archive's manifest.json."""
    what = f"entry {i}"
    entry = obj(value, what, "manifest.json")
    config = string(entry.get("Config"), f"{what}'s Config", "manifest.json")
    layers = strings(entry.get("Layers", []), f"{what}'s Layers", "manifest.json")
    tags = entry.get("RepoTags") or []
    return config, layers, strings(tags, f"{what}'s RepoTags", "manifest.json")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json_text(value)
    return text if len(text) <= 80 else text[:79] + "…"


def json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
