"""Files between the web server and hosts that share no disk with it: uploads (import, load) and downloads
(export, save, log download).

Design. A host's only links to the control plane are Redis, the database and HTTP, so:
- Upload: the web server streams the request body into its own staging dir (containers/transfer_files.py,
  never a host's state root) and commits a Transfer row with a random secret beside the job. The job's params
  name the transfer, never the secret. The worker reads the secret from the row and fetches the file over HTTP
  from the control plane's internal endpoint (`BERTH_CONTROL_URL/internal/transfers/<id>/`, GET, at most the
  staged size), imports it from an anonymous local file and consumes the transfer (DELETE), which deletes the
  staged file. A re-run after a worker died mid-job fetches again: the transfer lives until its job finishes
  or it expires (BERTH_TRANSFER_TTL); then the sweep deletes it.
- Download: the worker writes the job's file anonymously on its own disk, makes a single-use Transfer row
  (expiring in an hour) and pushes the file (PUT, with its length) to the endpoint, which writes it
  anonymously to `downloads/` and names it `<job id>` only once every byte arrived; the row is deleted then.
  The browser downloads it from there; the web side expires it after BERTH_EXPORT_MAX_AGE.
Why HTTP and not chunks through Redis: the web server already streams files to and from clients, HTTP gives
backpressure (TCP) and lengths for free, and Redis stays small; a single-use secret per file in the database
keeps users (who see jobs, not transfers) out. Memory is constant (1 MiB chunks) on both sides, and a process
killed mid-transfer leaves nothing: its file had no name yet, and the sweep removes named files that nobody
holds (flock) and nobody owns."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import transfer_files
from .models import Host, Job
from .transfer_model import Transfer

DOWNLOAD_KINDS = ("container.export", "image.save", "container.logs", "container.archive_get")
# Jobs that receive a file another host's worker pushed (a relay, see transfer_views._receive_relay).
RELAY_KINDS = ("container.receive",)


def ttl() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "BERTH_TRANSFER_TTL", 24 * 3600)))


def upload_id(path: Path) -> uuid.UUID | None:
    """The transfer id a staged upload's name carries (`<uuid hex>.upload`), or None."""
    stem, dot, ext = path.name.partition(".")
    if not dot or ext != "upload":
        return None
    try:
        return uuid.UUID(hex=stem)
    except ValueError:
        return None


def new_upload_path() -> Path:
    return transfer_files.uploads_dir() / f"{uuid.uuid4().hex}.upload"


def register_upload(host: Host, job: Job, path: Path) -> Transfer:
    """The row that owns a staged upload and lets `host`'s worker fetch it for `job` (call in the job's
    transaction; the request keeps the file locked until it commits)."""
    return Transfer.objects.create(id=upload_id(path), kind=Transfer.Kind.UPLOAD, host=host, job=job,
                                   size=path.stat().st_size, expires=timezone.now() + ttl())


def upload_params(path: Path) -> dict:
    """What a job's params say about its upload: the transfer id and size, never the secret."""
    return {"upload": str(upload_id(path)), "upload_size": path.stat().st_size}


def staged_upload(transfer: Transfer) -> Path:
    return transfer_files.uploads_dir() / f"{transfer.pk.hex}.upload"


def download_file(job: Job) -> Path:
    return transfer_files.downloads_dir() / str(job.pk)


# --- ownership, sweep, expiry -------------------------------------------------------------------------

def _owned(kind: str, path: Path) -> bool:
    if kind == "uploads":
        tid = upload_id(path)
        return tid is not None and Transfer.objects.filter(  # a relay's file is named while it still grows
            pk=tid, kind__in=(Transfer.Kind.UPLOAD, Transfer.Kind.RELAY), expires__gt=timezone.now()).exclude(
            job__state__in=Job.FINISHED_STATES).exclude(job=None).exists()
    if not path.name.isdigit():
        return False
    return Job.objects.filter(pk=int(path.name), kind__in=DOWNLOAD_KINDS,
                              state__in=(Job.State.SUCCEEDED, Job.State.RUNNING)).exists()


def max_age() -> float:
    return float(getattr(settings, "BERTH_EXPORT_MAX_AGE", 24 * 3600))


def describe_age(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def expire_downloads(age: float | None = None, now: float | None = None) -> list[int]:
    """Delete downloads older than `age` seconds and mark their jobs expired (a download then answers 410
    with the reason); returns the ids of the jobs marked."""
    age = max_age() if age is None else age
    cutoff = (time.time() if now is None else now) - age
    directory = transfer_files.transfer_dir() / "downloads"
    if not directory.is_dir():
        return []
    gone = []
    for path in directory.iterdir():
        try:
            old = path.lstat().st_mtime < cutoff
        except FileNotFoundError:
            continue
        if old and path.name.isdigit() and not transfer_files.is_locked(path):
            path.unlink(missing_ok=True)
            gone.append(int(path.name))
    marked = []
    for job in Job.objects.filter(pk__in=gone, kind__in=DOWNLOAD_KINDS, state=Job.State.SUCCEEDED):
        result = dict(job.result or {})
        if not result.get("expired"):
            result["expired"] = True
            message = f"the file expired after {describe_age(age)} and was removed: run the job again"
            Job.objects.filter(pk=job.pk).update(result=result, message=message)
            marked.append(job.pk)
    return marked


def sweep() -> list[Path]:
    """Remove staged files whose writer died or whose job ended, expired downloads, and transfer rows
    past their time. Cheap (one directory listing): run on each transfer and at web server start."""
    expire_downloads()
    # Rows past their time or of a finished job (e.g. a push whose worker was killed) grant nothing any more.
    Transfer.objects.filter(Q(expires__lte=timezone.now()) | Q(job__state__in=Job.FINISHED_STATES)).delete()
    return transfer_files.sweep(_owned)


def sweep_quietly() -> None:
    """`sweep` where a failure must not fail the request around it (e.g. the database not migrated yet)."""
    try:
        sweep()
    except Exception:  # noqa: BLE001 - housekeeping; the next sweep tries again
        import logging

        logging.getLogger(__name__).exception("transfer sweep failed")



__all__ = ["DOWNLOAD_KINDS", "Transfer", "describe_age", "download_file", "expire_downloads", "max_age",
           "new_upload_path", "register_upload", "staged_upload", "sweep", "upload_id", "upload_params"]
