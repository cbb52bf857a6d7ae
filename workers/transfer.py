"""The worker's side of transfers (design: containers/transfer.py): fetch a job's upload from the control
plane over HTTP, push a job's download to it. Files on the host are anonymous (tempfile.TemporaryFile, i.e.
O_TMPFILE in `<state root>/transfers`), so a worker killed mid-transfer leaves nothing on its disk; memory
stays constant (1 MiB chunks). A move's pack is streamed host to host instead (RelayWriter on the sender,
streamed_upload on the receiver, containers/transfer_relay.py between them): no file on either host."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from containers.transfer_model import Transfer
from containers.transfer_relay import PART
from workers.engine.containers.pack_tar import Parts, kept

CHUNK = 1 << 20
PUSH_TTL = timedelta(hours=1)
TIMEOUT = 300.0
FIRST_PART = 1 << 20
KEEP_IDLE = 2.0  # seconds a relay's connection may sit unused and still be used (uvicorn keeps one alive 5 s)


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


def _call(method: str, row: Transfer, body: IO[bytes] | bytes | list | None = None, length: int | None = None,
          query: str = "", conn: http.client.HTTPConnection | None = None):
    """One request about `row`'s transfer, on `conn` (kept open: the caller's) or on a new connection."""
    base = urlsplit(str(settings.BERTH_CONTROL_URL)).path.rstrip("/")
    if conn is None:
        conn, base = _connection()
    headers = {"Authorization": f"Bearer {row.token}"}
    if length is not None:
        headers["Content-Length"] = str(length)
    try:
        conn.request(method, f"{base}/internal/transfers/{row.pk}/{query}", body=body, headers=headers)
        return conn, conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _job_error(f"could not reach the control plane at {settings.BERTH_CONTROL_URL} "
                         f"(BERTH_CONTROL_URL): {exc}") from None


def _put(row: Transfer, body: IO[bytes] | bytes | list, length: int, refused: str, query: str = "",
         conn: http.client.HTTPConnection | None = None) -> None:
    """PUT bytes to the control plane's transfer; anything but 201 fails the job with `refused` and its reason.
    A connection of the caller's stays open for its next request."""
    conn, resp = _call("PUT", row, body=body, length=length, query=query, conn=conn)
    kept = False
    try:
        if resp.status != 201:
            raise _job_error(f"{refused}: {_message(resp)}")
        resp.read()
        kept = not resp.will_close
    finally:
        if not kept:
            conn.close()


def upload_transfer(job, kinds: tuple[str, ...] = (Transfer.Kind.UPLOAD,)) -> Transfer:
    row = Transfer.objects.filter(job=job, kind__in=kinds).first()
    if row is None or row.expires <= timezone.now():
        raise _job_error("the uploaded file is gone from the control plane; upload it again", "upload_gone")
    return row


@contextlib.contextmanager
def _upload_response(row: Transfer) -> Iterator[tuple[http.client.HTTPConnection, http.client.HTTPResponse]]:
    """The control plane's answer to GET of the upload, refused unless it is sending it; closed on exit."""
    conn, resp = _call("GET", row)
    try:
        if resp.status in (404, 410):
            raise _job_error("the uploaded file is gone from the control plane; upload it again", "upload_gone")
        if resp.status != 200:
            raise _job_error(f"the control plane refused to send the upload: {_message(resp)}")
        yield conn, resp
    finally:
        conn.close()


@contextlib.contextmanager
def fetched_upload(job) -> Iterator[IO[bytes]]:
    """The job's upload as a local, seekable, nameless file (closed, thus gone, on exit)."""
    row = upload_transfer(job)
    with _upload_response(row) as (conn, resp):
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


class _Capped:
    """A response body read as a file, at most `size` bytes (None: a relay still arriving, whose length nobody
    knows yet; its reader must tell a cut stream by its content, as a move's pack does); a known size that
    arrives short raises."""

    def __init__(self, resp: http.client.HTTPResponse, size: int | None) -> None:
        self.resp, self.size, self.got = resp, size, 0

    def read(self, n: int = -1) -> bytes:
        left = (self.size - self.got) if self.size is not None else int(settings.BERTH_MAX_DOWNLOAD_BYTES) - self.got
        if left <= 0:
            return b""
        try:
            # read1: what has arrived (at most n), so a reader of a stream still being sent never waits for more
            # than it needs
            chunk = self.resp.read1(min(CHUNK, left) if n is None or n < 0 else min(n, left))
        except (OSError, http.client.HTTPException) as exc:
            raise _job_error(f"the upload broke off after {self.got} bytes ({exc}): run the job again") from None
        if not chunk and self.size is not None:
            raise _job_error(f"the upload arrived incomplete ({self.got} of {self.size} bytes): run the job again")
        self.got += len(chunk)
        return chunk


@contextlib.contextmanager
def streamed_upload(job) -> Iterator[IO[bytes]]:
    """The job's upload read straight from the control plane's response, nothing written on this host, while
    its sender may still be sending it (a relay, containers/transfer_relay.py): for a reader that checks what it
    reads itself and undoes what it made if the stream fails (a move's pack)."""
    row = upload_transfer(job, (Transfer.Kind.UPLOAD, Transfer.Kind.RELAY))
    with _upload_response(row) as (_conn, resp):
        length = resp.getheader("Content-Length")
        yield _Capped(resp, int(length) if length and length.isdigit() else None)  # type: ignore[misc]


def consume_upload(job) -> None:
    """Tell the control plane the upload was used (or refused for good): it deletes the staged file (a relay's
    sender is then refused at its next part)."""
    consuming(job)()


def consuming(job) -> Callable[[], None]:
    """consume_upload's request sent by a thread of its own (the control plane's unlink of a large file takes a
    while): returns the function that waits for it. The row is read here (no database use in the thread)."""
    import threading

    row = Transfer.objects.filter(job=job, kind__in=(Transfer.Kind.UPLOAD, Transfer.Kind.RELAY)).first()
    if row is None:
        return lambda: None

    def delete() -> None:
        with contextlib.suppress(Exception):  # the sweep deletes it once the job has finished anyway
            conn, resp = _call("DELETE", row)
            resp.read()
            conn.close()

    thread = threading.Thread(target=delete, name=f"consume-{row.pk}", daemon=True)
    thread.start()
    return lambda: thread.join(TIMEOUT)


def push_download(job, source: IO[bytes], filename: str, content_type: str) -> dict[str, Any]:
    """Send the job's finished file (a seekable local file) to the control plane; the job's result."""
    source.flush()
    size = os.fstat(source.fileno()).st_size
    source.seek(0)
    row = Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.DOWNLOAD, host=job.host, job=job,
                                  size=size, expires=timezone.now() + PUSH_TTL)
    try:
        _put(row, source, size, f"the control plane refused the file ({size} bytes)")
    finally:
        Transfer.objects.filter(pk=row.pk).delete()
    return {"size": size, "filename": filename, "content_type": content_type}


class RelayWriter:
    """Write a file for another host's job to the control plane as it is made (containers/transfer_relay.py): a
    writable file object whose bytes go out in parts, PUT by a thread of its own so that making the next part
    and sending this one overlap. The receiving job may read it from the first part on. `close()` sends the last
    part and returns the bytes sent; `abort()` stops (the part not sent is dropped). Memory: about three parts
    (the one being made, one queued, one being sent)."""

    def __init__(self, receiving_job, part: int = PART) -> None:
        import queue
        import threading

        self.row = Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.RELAY, host=receiving_job.host,
                                           job=receiving_job, size=0, expires=timezone.now() + PUSH_TTL)
        # The first parts are small and each the double of the one before, up to `part`: the receiver's first bytes
        # leave once FIRST_PART is written, not a whole part (8 MiB of a layer read first: 40 ms, bench/move.py).
        self.cut = Parts(min(FIRST_PART, part))  # the part being made: the chunks written, as they were
        self.most, self.sent, self.queued = part, 0, 0
        self.error: BaseException | None = None
        self.parts: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name=f"relay-{self.row.pk}", daemon=True)
        self.thread.start()

    def write(self, data: bytes) -> int:
        data = kept(data)  # held until sent
        for part in self.cut.add(data):
            self._queue(part, end=False)
            self.cut.size = min(self.cut.size * 2, self.most)
        return len(data)

    def tell(self) -> int:
        return self.queued + self.cut.held

    def flush(self) -> None:
        pass

    def _queue(self, chunks: list, end: bool) -> None:
        if self.error is not None:
            raise self.error
        size = sum(len(c) for c in chunks)
        self.parts.put((chunks, size, end))
        self.queued += size

    def _run(self) -> None:
        import time

        # One connection for the parts that follow each other closely (a closed one reconnects by itself); one
        # idle for longer than KEEP_IDLE is closed first, before the server's keep-alive timeout may close it
        # under a request.
        conn, last = _connection()[0], time.monotonic()
        try:
            while True:
                chunks, size, end = self.parts.get()
                if chunks is None or self.error is not None:
                    return
                if time.monotonic() - last > KEEP_IDLE:
                    conn.close()
                try:  # the chunks go out one by one (http.client sends an iterable body so): nothing joined
                    _put(self.row, chunks, size, f"the control plane refused part {self.sent} of the file",
                         query=f"?offset={self.sent}&end={int(end)}", conn=conn)
                    self.sent += size
                    last = time.monotonic()
                except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread
                    self.error = exc
                if end:
                    return
        finally:
            conn.close()

    def close(self) -> int:
        self._queue(self.cut.rest(), end=True)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.sent

    def abort(self) -> None:
        if self.thread.is_alive():
            self.error = self.error or _job_error("the file was abandoned")
            with contextlib.suppress(Exception):
                self.parts.put_nowait((None, 0, True))
            self.thread.join(timeout=TIMEOUT)
