"""Uploads: streamed in chunks into the web server's own staging dir (containers/transfer_files.py, never a
host's state root), checked to be an archive before a job gets them; the host's worker fetches them over
HTTP (containers/transfer.py). A staged file stays locked by the request that staged it until the job's
Transfer row owns it, so a web server killed in between leaves a file the next sweep removes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from .. import transfer, transfer_files
from .common import ServiceError

CHUNK = transfer_files.CHUNK


def uploads_dir() -> Path:
    return transfer_files.uploads_dir()


def new_upload_path() -> Path:
    return transfer.new_upload_path()


def _too_big(limit: int) -> ServiceError:
    return ServiceError("invalid", f"the upload is larger than {limit} bytes", field="file", status=413)


def save_upload(source: IO[bytes] | Any, dest: Path | None = None, *, limit: int | None = None) -> Path:
    """Copy an upload (Django UploadedFile or a binary file object) to the staging dir in chunks. The file
    gets its name only once complete, and stays locked until `transfer_files.release_path(path)`."""
    dest = dest or new_upload_path()
    staging = transfer_files.Staging(dest.parent)
    try:
        chunks = source.chunks(CHUNK) if hasattr(source, "chunks") else iter(lambda: source.read(CHUNK), b"")
        staging.copy_from(chunks, limit, lambda: _too_big(limit))
        staging.publish(dest)
    except BaseException:
        staging.discard()
        raise
    transfer_files.hold(staging)
    return dest


def discard_upload(path: str | os.PathLike[str]) -> None:
    Path(path).unlink(missing_ok=True)
    transfer_files.release_path(path)


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


def _staged_by_caller(upload: Any) -> Path | None:
    if isinstance(upload, (str, os.PathLike)):
        path = Path(upload)
        if path.parent.resolve() == uploads_dir().resolve() and transfer.upload_id(path) is not None:
            return path
    return None


def _stage_upload(upload: Any) -> Path:
    """The upload's path in the staging dir (copied there unless the caller staged it); ours to clean."""
    staged = _staged_by_caller(upload)
    if staged is not None:
        if not staged.is_file():
            raise ServiceError("invalid", "the uploaded file is missing", field="file")
        return staged
    if isinstance(upload, (str, os.PathLike)):
        raise ServiceError("invalid", "a file is required (an upload, not a path)", field="file")
    if upload is None or not (hasattr(upload, "chunks") or hasattr(upload, "read")):
        raise ServiceError("invalid", "a file is required", field="file")
    return save_upload(upload)


def _discard_staged(upload: Any) -> None:
    """Delete a caller-staged upload that will not be imported."""
    staged = _staged_by_caller(upload)
    if staged is not None:
        discard_upload(staged)


def _check_upload(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise ServiceError("not_a_tarball", "the uploaded file is empty", field="file")
    if not looks_like_archive(head):
        raise ServiceError("not_a_tarball", "the uploaded file is not a tar archive (plain, gzip or zstd)",
                           field="file")
