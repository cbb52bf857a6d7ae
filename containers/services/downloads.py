"""Downloads: the file a finished export/save/logs job made (its worker pushed it to this web server,
see containers/transfer.py), streamed to who may have it."""

from __future__ import annotations

import os
from pathlib import Path

from django.http import FileResponse

from .. import audit, permissions, transfer
from ..models import Job
from .common import ServiceError, _refuse

DOWNLOAD_ACTIONS = {"container.export": "container.export", "image.save": "image.save",
                    "container.logs": "container.logs", "container.archive_get": "container.archive_get"}


# --- downloads ----------------------------------------------------------------------------------------

class StreamedFile(FileResponse):
    """A FileResponse that an ASGI server streams chunk by chunk. Django would otherwise read a
    synchronous file iterator into memory whole before sending it (the whole export)."""

    block_size = 256 * 1024

    async def __aiter__(self):
        from asgiref.sync import sync_to_async

        read = sync_to_async(self.file_to_stream.read, thread_sensitive=False)
        while True:
            chunk = await read(self.block_size)
            if not chunk:
                break
            yield chunk


def download_path(job: Job) -> Path:
    """The finished job's file, which its worker pushed to this web server's staging dir
    (containers/transfer.py); a file older than BERTH_EXPORT_MAX_AGE expires now."""
    result = job.result if isinstance(job.result, dict) else {}
    if not result.get("expired") and job.pk in transfer.expire_downloads():
        job.refresh_from_db()
        result = job.result
    if result.get("expired"):
        raise ServiceError("gone", job.message or "the file of this job expired and was removed: run the job "
                                                  "again")
    path = transfer.download_file(job)
    if not path.is_file():
        raise ServiceError("not_found", "the file of this job is gone")
    return path


def download_response(user, job: Job, request=None) -> StreamedFile:
    """A streamed download of a finished export/save/logs job's file, with type and length."""
    action = DOWNLOAD_ACTIONS.get(job.kind)
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, "job.download", job, ServiceError("not_authenticated", "sign in first",
                                                                       status=401))
    if not permissions.can(user, "view", job):
        raise _refuse(request, user, "job.download", job, ServiceError("not_found", "no such job"))
    try:
        if action is None:
            raise ServiceError("no_download", f"{job.kind} jobs make no file to download", status=404)
        target = permissions.job_target(job)
        if target is not None:
            if not permissions.can(user, action, target):
                raise ServiceError("forbidden", f"you may not download the result of {job.kind} here", status=403)
        elif not (user.is_superuser or job.requested_by_id == user.pk):
            raise ServiceError("forbidden", "only who asked for this job may download it now", status=403)
        if job.state != Job.State.SUCCEEDED:
            raise ServiceError("conflict", f"job #{job.pk} is {job.state}: download once it succeeded")
        path = download_path(job)
    except ServiceError as exc:
        raise _refuse(request, user, "job.download", job, exc) from None
    result = job.result if isinstance(job.result, dict) else {}
    f = open(path, "rb")  # an open file outlives a later expiry pass: the download completes
    filename = str(result.get("filename") or "download").replace("/", "_")
    response = StreamedFile(f, as_attachment=True, filename=filename,
                            content_type=str(result.get("content_type") or "application/octet-stream"))
    size = os.fstat(f.fileno()).st_size
    response["Content-Length"] = str(size)
    audit.record(request, user, "job.download", job, "ok", {"size": size}, status_code=200)
    return response
