"""/api/v1/containers: list, create, the lifecycle actions and logs; changes go through
containers/services (checks, validation, audit, job) and answer 202 with the Job."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from workers.engine.containers.spec import ContainerSpec

from .. import bounds, permissions, selectors, services
from ..models import Container, Image
from . import logs
from . import move as move_api
from . import serializers as s
from .common import (
    LenientNegotiation,
    ThrottleFirst,
    _idempotency_key,
    _job_response,
    _object_for_action,
    _valid,
)
from .filters import LABEL_FILTER_PATTERN
from .params import query_bool
from .schema import IDEMPOTENCY, PAGE, SEARCH, _action_schema, _param, errors, ordering_param

CONTAINER_FILTERS = [
    _param("state", "container state (several: comma-separated)", enum=[*Container.State.values, "unknown"]),
    _param("host", "host id or name"), _param("image", "image id or name:tag"),
    _param("owner", "owner id or username"), _param("team", "team id or name"),
    _param("label", "key or key=value (repeat for several; all must match)",
           {"type": "array", "items": {"type": "string", "pattern": LABEL_FILTER_PATTERN}}), SEARCH,
    ordering_param(selectors.lists.CONTAINER_ORDERING), *PAGE,
]



@extend_schema_view(
    list=extend_schema(summary="List containers", parameters=CONTAINER_FILTERS,
                       responses={200: s.ContainerSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A container", responses={200: s.ContainerSerializer, **errors(404)}),
)
class ContainerViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ContainerSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.containers(self.request.user, params)

    def _container(self, pk, kind: str) -> Container:
        return _object_for_action(Container, pk, self.request, kind)

    def _act(self, request: Request, pk, action_name: str, body_class=None, params=None) -> Response:
        container = self._container(pk, f"container.{action_name}")
        if params is None:
            params = _valid(body_class, request) if body_class else {}
        job = services.container_action(request.user, container, action_name, params=params, request=request,
                                        idempotency_key=_idempotency_key(request))
        return _job_response(job, request)

    @extend_schema(summary="Create a container (job container.create; starts it unless start=false)",
                   request=s.ContainerCreateSerializer, parameters=[IDEMPOTENCY],
                   responses={202: s.ContainerCreatedSerializer, **errors(400, 403, 404, 409)})
    def create(self, request: Request) -> Response:
        body = _valid(s.ContainerCreateSerializer, request)
        # No host: the service places it (least loaded matching host), an image given by id included.
        host = body.get("host")
        image = body["image"]
        if isinstance(image, int) or (str(image).isascii() and str(image).isdigit()):
            image = permissions.visible_images(request.user).filter(pk=bounds.as_id(image, Image) or 0).first()
            if image is None:
                raise services.ServiceError("no_such_image", f"no image #{body['image']}", field="image")
        spec = {k: body[k] for k in ContainerSpec.field_names() if k in body and k != "image"}
        container, job = services.create_container(
            request.user, host=host, image=image, name=body.get("name", ""), spec=spec,
            start=body.get("start", True), team=body.get("team"), placement=body.get("placement"), request=request,
            idempotency_key=_idempotency_key(request))
        if container is None:  # a repeated key whose container is gone already
            container = Container(pk=int(job.target_id or 0), name="", host=job.host)
        data = {"container": s.ContainerSerializer(container, context={"request": request}).data,
                "job": s.JobSerializer(job, context={"request": request}).data}
        return Response(data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/containers/{container.pk}"})

    @extend_schema(summary="Remove a container (job container.remove)",
                   parameters=[_param("force", "remove even if running", OpenApiTypes.BOOL), IDEMPOTENCY],
                   request=None, responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    def destroy(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "remove", params={"force": query_bool(request.query_params, "force")})

    @_action_schema("Start a container (job container.start)")
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "start")

    @_action_schema("Stop a container: SIGTERM, SIGKILL after timeout (job container.stop)", s.StopSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "stop", s.StopSerializer)

    @_action_schema("Send a signal to a container (job container.kill)", s.KillSerializer)
    @action(detail=True, methods=["post"])
    def kill(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "kill", s.KillSerializer)

    @_action_schema("Restart a container (job container.restart)", s.StopSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "restart", s.StopSerializer)

    @_action_schema("Pause a container (job container.pause)")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "pause")

    @_action_schema("Unpause a container (job container.unpause)")
    @action(detail=True, methods=["post"])
    def unpause(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "unpause")

    @_action_schema("Export a container's filesystem as a tar (job container.export; download it at "
                    "/jobs/{id}/download)")
    @action(detail=True, methods=["post"])
    def export(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "export")

    @_action_schema("Commit a container's changes as a new image (job container.commit)", s.CommitSerializer)
    @action(detail=True, methods=["post"])
    def commit(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "commit", s.CommitSerializer)

    @extend_schema(summary="Move a container to another host (job container.move on its host: the target "
                           "gets it under the same name, started if it ran, then the source's is removed)",
                   request=move_api.SendSerializer, parameters=[IDEMPOTENCY],
                   responses={202: s.ContainerCreatedSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk=None) -> Response:
        return move_api.send(request, self._container(pk, "container.move"), copy=False)

    @extend_schema(summary="Copy a container to another host (job container.copy; the source stays)",
                   request=move_api.SendSerializer, parameters=[IDEMPOTENCY],
                   responses={202: s.ContainerCreatedSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def copy(self, request: Request, pk=None) -> Response:
        return move_api.send(request, self._container(pk, "container.copy"), copy=True)

    @_action_schema("Remove a container (job container.remove); same as DELETE", s.RemoveSerializer)
    @action(detail=True, methods=["post"])
    def remove(self, request: Request, pk=None) -> Response:
        return self._act(request, pk, "remove", s.RemoveSerializer)

    @extend_schema(
        summary="A container's log lines (text); follow=true streams new lines until it stops",
        description="Without follow: served from the live Redis window when it holds enough lines, else read "
                    "from the host by a container.logs job (waited for up to BERTH_API_LOGS_WAIT seconds; "
                    "if it is not done by then: 202 with the Job, download its file when it succeeds).",
        parameters=[_param("tail", "number of last lines, or all (the default)",
                           {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 1000000},
                                      {"type": "string", "enum": ["all"]}]}),
                    _param("since", "only lines after this unix time (seconds)",
                           {"type": "number", "minimum": 0, "maximum": 1e11}),
                    _param("timestamps", "prefix each line with its RFC 3339 time", OpenApiTypes.BOOL),
                    _param("follow", "keep streaming new lines", OpenApiTypes.BOOL)],
        responses={(200, "text/plain"): OpenApiTypes.STR, 202: s.JobSerializer, **errors(400, 403, 404, 502)})
    @action(detail=True, methods=["get"], content_negotiation_class=LenientNegotiation)
    def logs(self, request: Request, pk=None):
        container = self.get_object() if bounds.as_id(pk, Container) else None
        if container is None:
            raise NotFound("not found")
        return logs.logs_response(request, container)
