"""Every API error is JSON: {"error": {"code": "stable_code", "message": "readable", "fields": {...}}}.

`fields` appears on validation errors and names each offending field with its messages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import permissions
from ..services import ServiceError

log = logging.getLogger(__name__)

CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" or "field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            out[prefix or "non_field_errors"] = [str(d) for d in detail]
        else:
            for i, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}.{i}" if prefix else str(i)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def too_large_message() -> str:
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1 << 20)
    return (f"the request body is larger than {limit:.1f} MiB: send less (e.g. a shorter env, labels or command), "
            "or upload files to the upload endpoints")


def exception_handler(exc: Exception, context: dict) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, met while parsing the body
        return Response(error_body("too_large", too_large_message(), {"body": [too_large_message()]}), status=413)
    if isinstance(exc, SuspiciousOperation):  # too many fields or files, a malformed multipart body …
        log.warning("refused a request: %s", exc)
        return Response(error_body("invalid", f"the request body was refused: {exc}", {"body": [str(exc)]}),
                        status=400)
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, {exc.field: [exc.message]} if exc.field else None),
                        status=exc.status)
    if isinstance(exc, permissions.NotVisible) or isinstance(exc, Http404):
        return Response(error_body("not_found", "not found"), status=404)
    if isinstance(exc, (permissions.Forbidden, DjangoPermissionDenied)):
        return Response(error_body("forbidden", str(exc) or "forbidden"), status=403)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()))
        message = first[1][0] if first[0] == "non_field_errors" else f"{first[0]}: {first[1][0]}"
        return Response(error_body("invalid", message, fields), status=400)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in CODES.items() if isinstance(exc, cls)), exc.default_code)
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else str(exc.default_detail)
        if isinstance(exc, exceptions.Throttled):
            message = f"too many requests: try again in {exc.wait:.0f} seconds" if exc.wait else "too many requests"
            if exc.wait:
                headers["Retry-After"] = str(int(exc.wait + 0.999))
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            authenticator = context["request"].authenticators[0] if context.get("request") else None
            if authenticator is not None:
                headers["WWW-Authenticate"] = authenticator.authenticate_header(context["request"])
            exc.status_code = status.HTTP_401_UNAUTHORIZED
        return Response(error_body(code, message), status=exc.status_code, headers=headers)
    log.exception("unexpected error in the API", exc_info=exc)
    return Response(error_body("internal_error", "internal error: the administrators can find it in the log"),
                    status=500)


def bad_request(request, exception=None):
    """handler400 (Django's SuspiciousOperation outside a DRF view, e.g. the CSRF check reading a form): a
    body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413, not 400; JSON under /api/, a short page elsewhere."""
    from django.http import HttpResponse, JsonResponse
    from django.utils.html import escape

    too_large = isinstance(exception, RequestDataTooBig)
    code, status = ("too_large", 413) if too_large else ("invalid", 400)
    message = too_large_message() if too_large else "bad request"
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message, {"body": [message]}), status=status)
    return HttpResponse(f"<!doctype html><title>{status}</title><h1>Request refused</h1><p>{escape(message)}</p>",
                        status=status)


def not_found(request, exception=None):
    """handler404: JSON under /api/ (ids that match no route), Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "not found"), status=404)
    return page_not_found(request, exception)


def server_error(request):
    """handler500: JSON under /api/, Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as page_server_error

    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal_error", "internal error: the administrators can find it in the "
                                                         "log"), status=500)
    return page_server_error(request)
