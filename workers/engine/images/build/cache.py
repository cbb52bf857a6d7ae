"""The build cache: a step's key (Docker's idea: the parent's key, the instruction as expanded, the build args
in scope, and for COPY/ADD the content of the files) → the layer it made.

Each entry is a dir `images/build-cache/<key>/` whose `image.json` names the manifest of the image state after
the step, registered like a container outside the containers dir (images/users/), so `gc` keeps its blobs and
layer dirs while the entry lives; `berth image gc` alone never drops the cache (removing the dir does)."""

from __future__ import annotations

import hashlib
import json
import shutil
from typing import TYPE_CHECKING, Any

from ..fsutil import atomic_write, atomic_write_json

if TYPE_CHECKING:
    from ..store import ImageStore

CACHE_ANNOTATION = "io.berth.build.cache-key"


def step_key(parent: str, *parts: Any) -> str:
    h = hashlib.sha256(parent.encode())
    for part in parts:
        h.update(b"\0" + json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()


class BuildCache:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.dir = store.dir / "build-cache"
        self.dir.mkdir(exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry's layer descriptor and diff id, if its blob and unpacked dir are still in the store."""
        try:
            entry = json.loads((self.dir / key / "image.json").read_bytes())["cache"]
        except (OSError, ValueError, KeyError):
            return None
        if not self.store.blob_path(entry["layer"]["digest"]).exists() or \
                not self.store.layer_dir(entry["diff_id"]).exists():
            return None
        return entry

    def put(self, key: str, manifest_digest: str, layer: dict[str, Any], diff_id: str) -> None:
        d = self.dir / key
        d.mkdir(exist_ok=True)
        atomic_write_json(d / "image.json", {"manifest": manifest_digest,
                                             "cache": {"layer": layer, "diff_id": diff_id}})
        atomic_write(self.store.users_dir / f"build-{key}", str(d).encode())

    def prune(self) -> int:
        n = 0
        for d in self.dir.iterdir():
            (self.store.users_dir / f"build-{d.name}").unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)
            n += 1
        return n
