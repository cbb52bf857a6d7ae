"""/api/v1/hosts: the hosts a user may see (read-only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from .. import selectors
from . import serializers as s
from .common import ThrottleFirst
from .schema import PAGE, SEARCH, errors, ordering_param


@extend_schema_view(
    list=extend_schema(summary="List hosts", parameters=[SEARCH, ordering_param(["name", "created"]), *PAGE],
                       responses={200: s.HostSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A host", responses={200: s.HostSerializer, **errors(404)}),
)
class HostViewSet(ThrottleFirst, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.HostSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.hosts(self.request.user, params)
