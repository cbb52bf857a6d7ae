"""Uploads: staged in the uploads dir in chunks, checked to be an archive before a job gets them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from .common import ServiceError

CHUNK = 1 << 20


def uploads_dir() -> Path:
    path = Path(settings.BERTH_STATE_ROOT) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_upload_path() -> Path:
    return uploads_dir() / f"{uuid.uuid4().hex}.upload"


def save_upload(source: IO[bytes] | Any, dest: Path | None = None, *, limit: int | None = None) -> Path:
    """Copy an upload (Django UploadedFile or a binary file object) to the uploads dir in chunks."""
    dest = dest or new_upload_path()
    written = 0
    try:
        with open(dest, "xb") as out:
            chunks = source.chunks(CHUNK) if hasattr(source, "chunks") else iter(lambda: source.read(CHUNK), b"")
            for chunk in chunks:
                written += len(chunk)
                if limit is not None and written > limit:
                    raise ServiceError("invalid", f"the upload is larger than {limit} bytes", field="file",
                                       status=413)
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def looks_like_archive(head: bytes) -> bool:
    """tar (ustar magic or a valid v7 header checksum), gzip or zstd, from the first 512 bytes."""
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:512])


def _stage_upload(upload: Any) -> Path:
    """The upload's path in the uploads dir (copied there unless the caller staged it); ours to clean."""
    if isinstance(upload, (str, os.PathLike)):
        path = Path(upload)
        if not path.is_absolute() or not path.is_file():
            raise ServiceError("invalid", "the uploaded file is missing", field="file")
        if path.resolve().parent == uploads_dir().resolve():
            return path  # already staged by the caller (streamed request body)
        with open(path, "rb") as src:
            return save_upload(src)
    if upload is None or not (hasattr(upload, "chunks") or hasattr(upload, "read")):
        raise ServiceError("invalid", "a file is required", field="file")
    return save_upload(upload)


def _discard_staged(upload: Any) -> None:
    """Delete a caller-staged upload (a path in an uploads dir) that will not be imported."""
    if isinstance(upload, (str, os.PathLike)) and Path(upload).parent.name == "uploads":
        Path(upload).unlink(missing_ok=True)


def _check_upload(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise ServiceError("not_a_tarball", "the uploaded file is empty", field="file")
    if not looks_like_archive(head):
        raise ServiceError("not_a_tarball", "the uploaded file is not a tar archive (plain, gzip or zstd)",
                           field="file")
