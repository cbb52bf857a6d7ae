"""The worker's side of transfers (design: containers/transfer.py): fetch a job's upload from the control
plane over HTTP, push a job's download to it. Files on the host are anonymous (tempfile.TemporaryFile, i.e.
O_TMPFILE in `<state root>/transfers`), so a worker killed mid-transfer leaves nothing on its disk; memory
stays constant (1 MiB chunks)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from containers.transfer_model import Transfer

CHUNK = 1 << 20
PUSH_TTL = timedelta(hours=1)
TIMEOUT = 300.0


def _job_error(message: str, code: str = "transfer_failed"):
    from workers.tasks import JobError

    return JobError(message, code=code, field="file" if code == "upload_gone" else None)


def local_dir() -> str:
    path = os.path.join(str(settings.BERTH_STATE_ROOT), "transfers")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def local_file() -> IO[bytes]:
    """A nameless file on the host's disk (never left behind: the kernel frees it with the last fd)."""
    return tempfile.TemporaryFile(dir=local_dir())


def _connection() -> tuple[http.client.HTTPConnection, str]:
    url = urlsplit(str(settings.BERTH_CONTROL_URL))
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    return cls(url.hostname, url.port, timeout=TIMEOUT, blocksize=CHUNK), url.path.rstrip("/")


def _message(resp: http.client.HTTPResponse) -> str:
    body = resp.read(4096)
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status} {resp.reason}"


def _call(method: str, row: Transfer, body: IO[bytes] | None = None, length: int | None = None):
    conn, base = _connection()
    headers = {"Authorization": f"Bearer {row.token}"}
    if length is not None:
        headers["Content-Length"] = str(length)
    try:
        conn.request(method, f"{base}/internal/transfers/{row.pk}/", body=body, headers=headers)
        return conn, conn.getresponse()
    except OSError as exc:
        conn.close()
        raise _job_error(f"could not reach the control plane at {settings.BERTH_CONTROL_URL} "
                         f"(BERTH_CONTROL_URL): {exc}") from None


def upload_transfer(job) -> Transfer:
    row = Transfer.objects.filter(job=job, kind=Transfer.Kind.UPLOAD).first()
    if row is None or row.expires <= timezone.now():
        raise _job_error("the uploaded file is gone from the control plane; upload it again", "upload_gone")
    return row


@contextlib.contextmanager
def fetched_upload(job) -> Iterator[IO[bytes]]:
    """The job's upload as a local, seekable, nameless file (closed, thus gone, on exit)."""
    row = upload_transfer(job)
    conn, resp = _call("GET", row)
    try:
        if resp.status in (404, 410):
            raise _job_error("the uploaded file is gone from the control plane; upload it again", "upload_gone")
        if resp.status != 200:
            raise _job_error(f"the control plane refused to send the upload: {_message(resp)}")
        with local_file() as out:
            got = 0
            while chunk := resp.read(CHUNK):
                got += len(chunk)
                if got > row.size:
                    raise _job_error(f"the control plane sent more than the upload's {row.size} bytes")
                out.write(chunk)
            if got != row.size:
                raise _job_error(f"the upload arrived incomplete ({got} of {row.size} bytes): run the job again")
            out.seek(0)
            conn.close()
            yield out
    finally:
        conn.close()


def consume_upload(job) -> None:
    """Tell the control plane the upload was used (or refused for good): it deletes the staged file."""
    row = Transfer.objects.filter(job=job, kind=Transfer.Kind.UPLOAD).first()
    if row is None:
        return
    with contextlib.suppress(Exception):  # the sweep deletes it once the job has finished anyway
        conn, resp = _call("DELETE", row)
        resp.read()
        conn.close()


def push_download(job, source: IO[bytes], filename: str, content_type: str) -> dict[str, Any]:
    """Send the job's finished file (a seekable local file) to the control plane; the job's result."""
    source.flush()
    size = os.fstat(source.fileno()).st_size
    source.seek(0)
    row = Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.DOWNLOAD, host=job.host, job=job,
                                  size=size, expires=timezone.now() + PUSH_TTL)
    try:
        conn, resp = _call("PUT", row, body=source, length=size)
        try:
            if resp.status != 201:
                raise _job_error(f"the control plane refused the file ({size} bytes): {_message(resp)}")
            resp.read()
        finally:
            conn.close()
    finally:
        Transfer.objects.filter(pk=row.pk).delete()
    return {"size": size, "filename": filename, "content_type": content_type}


def push_relay(receiving_job, source: IO[bytes]) -> int:
    """Send a local file to the control plane for another host's queued job (a move's pack): it becomes that
    job's upload, fetched by the receiving worker with `fetched_upload`. Returns the bytes sent."""
    source.flush()
    size = os.fstat(source.fileno()).st_size
    source.seek(0)
    row = Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.RELAY, host=receiving_job.host,
                                  job=receiving_job, size=size, expires=timezone.now() + PUSH_TTL)
    conn, resp = _call("PUT", row, body=source, length=size)
    try:
        if resp.status != 201:
            Transfer.objects.filter(pk=row.pk, kind=Transfer.Kind.RELAY).delete()
            raise _job_error(f"the control plane refused the file ({size} bytes): {_message(resp)}")
        resp.read()
    finally:
        conn.close()
    return size
