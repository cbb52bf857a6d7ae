"""The control plane's internal transfer endpoint, for workers only: `/internal/transfers/<id>/`.

GET streams a staged upload, DELETE consumes it, PUT receives a download (see containers/transfer.py).
The caller proves it is the worker by the transfer's secret (`Authorization: Bearer <secret>`), which only
the database holds; a wrong secret, an unknown or expired transfer all answer the same 404. Not part of the
public API (no session, no CSRF, not in the OpenAPI schema)."""

from __future__ import annotations

import hmac
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from . import transfer, transfer_files, transfer_relay
from .models import Job
from .services.downloads import StreamedFile
from .transfer_model import Transfer

log = logging.getLogger(__name__)


class LargeBlockStream(StreamedFile):
    """A staged upload or a relay (read as it grows) sent in larger blocks than StreamedFile's 256 KiB: each block
    is a thread hop in an ASGI server, which cost more of the web server's time than the bytes (bench/move.py)."""

    block_size = 1 << 20


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": None}}, status=status)


def authenticated(authorization: str, pk) -> Transfer | None:
    """The live transfer `pk` if `authorization` (the header) carries its secret, else None."""
    scheme, _, secret = authorization.partition(" ")
    row = Transfer.objects.select_related("job").filter(pk=pk, expires__gt=timezone.now()).first()
    if row is None or scheme != "Bearer" or not hmac.compare_digest(secret.encode(), row.token.encode()):
        return None
    return row


@csrf_exempt
def transfer_view(request: HttpRequest, pk) -> HttpResponse:
    row = authenticated(request.META.get("HTTP_AUTHORIZATION", ""), pk)
    if row is None:
        return _error(404, "not_found", "no such transfer")
    if row.kind == Transfer.Kind.UPLOAD and request.method == "GET":
        return _send_upload(row)
    if row.kind == Transfer.Kind.RELAY and request.method == "GET":  # still arriving: read as it grows
        return LargeBlockStream(transfer_relay.GrowingFile(row), content_type="application/octet-stream")
    if row.kind in (Transfer.Kind.UPLOAD, Transfer.Kind.RELAY) and request.method == "DELETE":
        transfer.staged_upload(row).unlink(missing_ok=True)
        row.delete()  # a relay's sender is refused at its next part, its reader cut at its next look
        return HttpResponse(status=204)
    if row.kind == Transfer.Kind.DOWNLOAD and request.method == "PUT":
        return _receive_download(request, row)
    if row.kind == Transfer.Kind.RELAY and request.method == "PUT":
        return _receive_relay(request, row)
    return _error(405, "method_not_allowed", f"{request.method} is not allowed on a {row.kind} transfer")


def _send_upload(row: Transfer) -> HttpResponse:
    path = transfer.staged_upload(row)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return _error(410, "gone", "the staged upload is gone")
    response = LargeBlockStream(f, content_type="application/octet-stream")
    response["Content-Length"] = str(row.size)
    return response


def _length(request: HttpRequest) -> int | JsonResponse:
    try:
        return transfer_relay.declared_length(request.META.get("CONTENT_LENGTH") or "")
    except transfer_relay.RelayRefused as exc:
        return _error(exc.status, exc.code, exc.message)


def _stage(request: HttpRequest, staging: transfer_files.Staging, length: int) -> JsonResponse | None:
    left = length
    while left:
        chunk = request.read(min(transfer_files.CHUNK, left))
        if not chunk:
            return _error(400, "incomplete", f"the file ended after {length - left} of {length} bytes")
        staging.write(chunk)
        left -= len(chunk)
    return None


def _receive_download(request: HttpRequest, row: Transfer) -> HttpResponse:
    job = row.job
    if job is None or job.state != Job.State.RUNNING or job.kind not in transfer.DOWNLOAD_KINDS:
        return _error(409, "conflict", "this transfer's job is not running")
    length = _length(request)
    if isinstance(length, JsonResponse):
        return length
    staging = transfer_files.Staging(transfer_files.downloads_dir())
    try:
        failed = _stage(request, staging, length)
        if failed is not None:
            return failed
        staging.publish(transfer.download_file(job))
        Transfer.objects.filter(pk=row.pk).delete()  # single use
    finally:
        staging.release()
    transfer.sweep_quietly()
    return JsonResponse({"size": length}, status=201)


def _receive_relay(request: HttpRequest, row: Transfer) -> HttpResponse:
    """One part of a host's file for another host's job (containers/transfer_relay.py): `?offset=N` where it
    starts, `&end=1` on the last. Without them the body is the whole file (offset 0, the end). Under the ASGI
    server containers/transfer_asgi.py takes these requests before Django does."""
    try:
        offset, length, end = transfer_relay.part_request(row, request.META.get("CONTENT_LENGTH") or "", request.GET)
        size = transfer_relay.append_part(request, row, offset, length, end)
    except transfer_relay.RelayRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return JsonResponse({"size": size}, status=201)
