"""/api/v1/audit: audit events a user may see (filters in filters.filter_audit)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from .. import selectors
from . import serializers as s
from .common import ThrottleFirst
from .schema import PAGE, _param, errors


@extend_schema_view(
    list=extend_schema(summary="Audit events (team admins: their teams'; everyone: their own; superusers: all)",
                       parameters=[_param("action", "e.g. container.start"),
                                   _param("result", "how it ended", enum=["ok", "denied", "invalid", "failed"]),
                                   _param("actor", "username"), _param("team", "team id or name"),
                                   _param("target_type", "container, image, job, team, apitoken …"),
                                   _param("target_id", "id of the target"), _param("via", "api, dashboard, websocket"),
                                   _param("since", "ISO 8601 time", OpenApiTypes.DATETIME),
                                   _param("until", "ISO 8601 time", OpenApiTypes.DATETIME), *PAGE],
                       responses={200: s.AuditEventSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="An audit event", responses={200: s.AuditEventSerializer, **errors(404)}),
)
class AuditViewSet(ThrottleFirst, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.audit_events(self.request.user, params)
