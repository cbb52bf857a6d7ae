"""OpenAPI helpers shared by the API views: parameters, documented error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from .. import services
from . import serializers as s

ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
IDEMPOTENCY = OpenApiParameter("Idempotency-Key", {"type": "string", "maxLength": services.IDEMPOTENCY_KEY_MAX,
                                                    "pattern": f"^{services.IDEMPOTENCY_KEY_CHARS}+$"},
                               OpenApiParameter.HEADER, required=False,
                               description="repeat a POST with the same key (per user) to get the same Job")


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error responses an operation documents (401 and 429 apply to every operation)."""
    text = {400: "invalid request (fields name the offending ones)", 401: "not signed in or bad token",
            403: "visible but not allowed for your role", 404: "no such object (or not visible to you)",
            409: "conflicts with the object's state", 410: "the file expired and was removed", 413: "upload too large", 415: "unsupported media type",
            429: "rate limited", 502: "the host failed the job"}
    return {c: OpenApiResponse(s.ErrorSerializer, description=text[c]) for c in sorted({*codes, 401, 429})}


def _param(name: str, description: str, kind: Any = OpenApiTypes.STR, many: bool = False,
           enum: list[str] | None = None) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, required=False, description=description, many=many,
                            enum=enum)


SEARCH = _param("search", "name contains (case-insensitive)")
PAGE = [_param("page", "page number (from 1)", {"type": "integer", "minimum": 1}),
        _param("page_size", "items per page", {"type": "integer", "minimum": 1, "maximum": 500})]


def ordering_param(fields: list[str]) -> OpenApiParameter:
    return _param("ordering", "sort key; prefix - for descending (several: comma-separated)",
                  enum=[*fields, *(f"-{f}" for f in fields)])



def _action_schema(summary: str, body=None, extra: tuple[int, ...] = ()) -> Any:
    return extend_schema(summary=summary, request=body, parameters=[IDEMPOTENCY],
                         responses={202: s.JobSerializer, **errors(400, 403, 404, 409, *extra)})
