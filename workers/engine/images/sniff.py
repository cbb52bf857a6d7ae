"""Tell an image archive (docker-archive, OCI archive) from a root filesystem tarball by its top-level
names, so `import` of a `docker save` file is refused instead of becoming an image whose filesystem is
manifest.json and layer.tar. Streams the headers in constant memory; a rootfs is recognised at its first
real entry, an archive needs the whole listing (docker save writes manifest.json last)."""

from __future__ import annotations

import os
import re
import tarfile

from .compression import decompressed
from .errors import NotARootfs

ARCHIVE_NAMES = {"blobs", "oci-layout", "index.json", "manifest.json", "repositories"}
LEGACY = re.compile(r"^[0-9a-f]{64}(\.json)?$")  # docker save before 25: <id>/layer.tar, <id>.json


def archive_format(path: str | os.PathLike[str]) -> str | None:
    """"docker-archive" or "oci-archive" when `path` is one, else None (a rootfs, or not a tarball at all:
    the import itself says what is wrong with it)."""
    seen: set[str] = set()
    try:
        with open(path, "rb") as raw:
            _, stream = decompressed(raw, str(path))
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    top = member.name.lstrip("/").removeprefix("./").split("/", 1)[0]
                    if top in ("", "."):
                        continue
                    if top not in ARCHIVE_NAMES and not LEGACY.match(top):
                        return None
                    seen.add(top)
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return None
    except Exception as exc:  # the decompressors' own errors (CorruptArchive …): not ours to judge
        if exc.__class__.__module__.startswith("workers.engine"):
            return None
        raise
    if "manifest.json" in seen:
        return "docker-archive"
    if "oci-layout" in seen and "index.json" in seen:
        return "oci-archive"
    return None


def refuse_image_archive(path: str | os.PathLike[str]) -> None:
    """Raise NotARootfs if `path` is an image archive."""
    fmt = archive_format(path)
    if fmt is not None:
        raise NotARootfs(fmt)
