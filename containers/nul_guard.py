"""Requests with a NUL character in their path or query parameters are refused with 400 before any view.

No name, label, search or filter in Berth may hold one, and PostgreSQL cannot store or compare a string that
does (psycopg raises DataError: a 500), while SQLite silently can: the same request must get the same answer on
both (schemathesis found GET /api/v1/networks?…%00… answering 500 on PostgreSQL). Request bodies are checked by
their serializers and forms (DRF's and Django's CharField refuse NUL already).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = "path" if "\x00" in request.path else next(
            (key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)), None)
        if field is None:
            return self.get_response(request)
        field = field.replace("\x00", "\\0")
        message = f"{field}: NUL characters are not allowed"
        if request.path.startswith("/api/"):
            from containers.api.errors import error_body

            return JsonResponse(error_body("invalid", message, {field: ["NUL characters are not allowed"]}),
                                status=400)
        return HttpResponseBadRequest(message)
