"""/api/v1/jobs: a user's jobs, their downloads, cancelling a queued one."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit, permissions, selectors, services
from .. import jobs as job_dispatch
from ..models import Job
from . import serializers as s
from .common import LenientNegotiation, ThrottleFirst, _object_for_action
from .schema import PAGE, _param, errors, ordering_param


@extend_schema_view(
    list=extend_schema(summary="List jobs", parameters=[
        _param("state", "job state (several: comma-separated)", enum=list(Job.State.values)),
        _param("kind", "e.g. container.start"), _param("host", "host id or name"),
        _param("target_type", "container, image, host"), _param("target_id", "id of the target"),
        ordering_param(["created", "started", "finished", "state", "kind"]), *PAGE],
        responses={200: s.JobSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A job (state, progress, result)", responses={200: s.JobSerializer,
                                                                               **errors(404)}),
)
class JobViewSet(ThrottleFirst, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.JobSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.jobs(self.request.user, params)

    @extend_schema(summary="Download the file a finished export/save/logs job made (streamed)",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                              **errors(403, 404, 409, 410)})
    @action(detail=True, methods=["get"], content_negotiation_class=LenientNegotiation)
    def download(self, request: Request, pk=None):
        job = _object_for_action(Job, pk, request, "job.download")
        return services.download_response(request.user, job, request=request)

    @extend_schema(summary="Cancel a job that has not started", request=None,
                   responses={200: s.JobSerializer, **errors(403, 404, 409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        job = _object_for_action(Job, pk, request, "job.cancel")
        if not permissions.can(request.user, "view", job):
            audit.record(request, request.user, "job.cancel", job, "denied", {"code": "not_found"}, status_code=404)
            raise services.ServiceError("not_found", "no such job")
        if not (request.user.is_superuser or job.requested_by_id == request.user.pk):
            audit.record(request, request.user, "job.cancel", job, "denied", {"code": "forbidden"}, status_code=403)
            raise services.ServiceError("forbidden", "only who asked for a job may cancel it")
        with transaction.atomic():
            cancelled = job_dispatch.cancel(job)
        if not cancelled:
            audit.record(request, request.user, "job.cancel", job, "invalid", {"code": "conflict"}, status_code=409)
            raise services.ServiceError("conflict", f"job #{job.pk} is {job.state}: only queued jobs can be cancelled")
        audit.record(request, request.user, "job.cancel", job, "ok", status_code=200)
        return Response(s.JobSerializer(job, context={"request": request}).data)
