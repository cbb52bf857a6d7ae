"""Test helpers for uploads and downloads as the control plane stages them (containers/transfer.py):
``submit_upload(kind, host, data, ...)`` stages bytes in this process's staging dir and submits the job with its
transfer, as the upload services do; ``download_of(job)`` is the file a download job's worker pushed here."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from django.db import transaction

from containers import jobs, transfer, transfer_files
from containers.services.uploads import save_upload


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def submit_upload(kind: str, host, data: bytes, *, requested_by=None, target=("image", ""), **params):
    """(job, staged path): `data` staged and job `kind` submitted with its Transfer in one transaction."""
    path = save_upload(io.BytesIO(data))
    try:
        with transaction.atomic():
            job = jobs.submit(kind, host, requested_by=requested_by, target=target,
                              params={**transfer.upload_params(path), **params})
            transfer.register_upload(host, job, path)
    finally:
        transfer_files.release_path(path)
    return job, path


def download_of(job) -> Path:
    return transfer.download_file(job)


def staged_files() -> list[str]:
    """Every name in the web side's staging dirs (uploads and downloads)."""
    root = transfer_files.transfer_dir()
    return sorted(f"{d}/{p.name}" for d in ("uploads", "downloads") if (root / d).is_dir()
                  for p in (root / d).iterdir())


def upload_of(job) -> Path:
    """The staged file of an import/load job (its params name the transfer, never a path)."""
    import uuid

    return transfer_files.uploads_dir() / f"{uuid.UUID(job.params['upload']).hex}.upload"


def make_download(job, data: bytes) -> Path:
    """The file a download job's worker would have pushed here."""
    path = transfer.download_file(job)
    path.write_bytes(data)
    return path
