"""POST /api/v1/containers/{id}/move and /copy (issue 18): send a container to another host as one job
(containers/services/move.py). 202 with the target's new container row and the job, as a create answers."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..services.move import send_container
from . import serializers as s
from .common import _idempotency_key, _valid


class SendSerializer(serializers.Serializer):
    host = s.HostField(help_text="host id or name to send the container to (not its own)")


def send(request: Request, container, *, copy: bool) -> Response:
    body = _valid(SendSerializer, request)
    made, job = send_container(request.user, container, body["host"], copy=copy, request=request,
                               idempotency_key=_idempotency_key(request))
    data = {"container": s.ContainerSerializer(made, context={"request": request}).data,
            "job": s.JobSerializer(job, context={"request": request}).data}
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/containers/{made.pk}"})


__all__ = ["SendSerializer", "send", "services"]
