"""/api/v1/containers/{id}/exec, …/exec/{session}, …/top, …/stats, …/files, …/archive: the way into a
running container. The services (containers/services/exec.py) check, validate, audit and queue; quick reads
wait for their job and answer with its result."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers as rf
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FileUploadParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..models import Container, Host
from ..services import exec as exec_services
from . import serializers as s
from .common import LenientNegotiation, ThrottleFirst, _job_response, _object_for_action, _valid
from .schema import _param, errors


class ExecSerializer(rf.Serializer):
    command = rf.JSONField(help_text='argv list (["sh", "-c", "…"]) or one command line')
    user = rf.CharField(required=False, allow_blank=True, max_length=64, help_text="name or uid[:gid]")
    env = rf.ListField(child=rf.CharField(max_length=8192), required=False, max_length=256,
                       help_text="KEY=VALUE strings")
    workdir = rf.CharField(required=False, allow_blank=True, max_length=4096)
    tty = rf.BooleanField(required=False, default=False)
    interactive = rf.BooleanField(required=False, allow_null=True, default=None,
                                  help_text="keep stdin open (default: as tty)")
    rows = rf.IntegerField(required=False, min_value=1, max_value=1000)
    cols = rf.IntegerField(required=False, min_value=1, max_value=1000)
    wait = rf.BooleanField(required=False, default=True, help_text="wait for the session to start (its id in "
                                                                    "the answer) instead of answering 202 at once")


SESSION = inline_serializer("ExecSession", {
    "session": rf.CharField(), "status": rf.CharField(), "pid": rf.IntegerField(allow_null=True),
    "exit_code": rf.IntegerField(allow_null=True), "tty": rf.BooleanField(), "job": s.JobSerializer(),
    "console": rf.CharField(help_text="WebSocket path of the session's console")})
TOP = inline_serializer("ContainerTop", {"titles": rf.ListField(child=rf.CharField()),
                                         "processes": rf.ListField(child=rf.DictField())})
STATS = inline_serializer("ContainerStats", {"container": rf.IntegerField(), "state": rf.CharField(),
                                             "available": rf.BooleanField(),
                                             "sample": rf.DictField(allow_null=True),
                                             "history": rf.ListField(child=rf.DictField())})
FILES = inline_serializer("ContainerFiles", {"path": rf.CharField(), "entries": rf.ListField(child=rf.DictField())})
PATH = _param("path", "absolute path in the container (symlinks resolved inside it)")


async def _session_output(session: str):
    """The relay's output stream of `session` from its start, until the exit entry."""
    import redis.asyncio as aioredis
    from django.conf import settings

    from workers.engine.monitor.exec_relay import out_key

    r = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
    last = "0-0"
    try:
        while True:
            got = await r.xread({out_key(session): last}, count=200, block=1000)
            for _key, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get(b"t") == b"exit":
                        return
                    yield fields.get(b"d", b"")
    finally:
        await r.aclose()


def _session_body(job, container: Container, request: Request) -> dict:
    result = job.result or {}
    return {"session": result.get("session"), "status": result.get("status"), "pid": result.get("pid"),
            "exit_code": result.get("exit_code"), "tty": bool(result.get("tty")),
            "job": s.JobSerializer(job, context={"request": request}).data,
            "console": f"/ws/containers/{container.pk}/console/?session={result.get('session')}"}


class ContainerWayInViewSet(ThrottleFirst, viewsets.GenericViewSet):
    """Detail routes only (registered beside ContainerViewSet under the same prefix)."""

    queryset = Container.objects.none()
    serializer_class = ExecSerializer  # what OPTIONS describes for the POST routes
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    def _container(self, pk, kind: str) -> Container:
        return _object_for_action(Container, pk, self.request, kind)

    @extend_schema(summary="Start an exec session in a running container (job container.exec)",
                   description="Operator role. With wait (the default) the answer is 201 with the session once "
                               "it runs; its output and input go through the console WebSocket, or "
                               "GET …/exec/{session} for its state and exit code.",
                   request=ExecSerializer, responses={201: SESSION, 202: s.JobSerializer,
                                                      **errors(400, 403, 404, 409, 502)})
    @action(detail=True, methods=["post"], url_path="exec")
    def exec(self, request: Request, pk=None) -> Response:
        container = self._container(pk, "container.exec")
        body = _valid(ExecSerializer, request)
        job = exec_services.start_exec(request.user, container, command=body["command"], user_spec=body.get("user"),
                                       env=body.get("env"), workdir=body.get("workdir"), tty=body.get("tty"),
                                       interactive=body.get("interactive"), rows=body.get("rows"),
                                       cols=body.get("cols"), request=request)
        done = exec_services.wait_finished(job) if body.get("wait", True) else None
        if done is None:
            return _job_response(job, request)
        return Response(_session_body(done, container, request), status=status.HTTP_201_CREATED)

    @extend_schema(summary="An exec session: its state and exit code", responses={200: SESSION, **errors(403, 404)})
    @action(detail=True, methods=["get"], url_path=r"exec/(?P<session>[A-Za-z0-9]{1,64})")
    def exec_session(self, request: Request, pk=None, session=None) -> Response:
        container = self._container(pk, "container.exec")
        exec_services.console_check(request.user, container, request)
        job = exec_services.exec_job(request.user, container, session)
        return Response(_session_body(job, container, request))

    @extend_schema(summary="An exec session's output as it comes (raw bytes, stdout and stderr merged), until it ends",
                   description="Plain HTTP streaming for clients without a WebSocket: the output the host's relay "
                               "kept from the start, then live. Operator role.",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(403, 404)})
    @action(detail=True, methods=["get"], url_path=r"exec/(?P<session>[A-Za-z0-9]{1,64})/output",
            content_negotiation_class=LenientNegotiation)
    def exec_output(self, request: Request, pk=None, session=None):
        from django.http import StreamingHttpResponse

        container = self._container(pk, "container.exec")
        exec_services.console_check(request.user, container, request)
        exec_services.exec_job(request.user, container, session)
        response = StreamingHttpResponse(_session_output(session), content_type="application/octet-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response

    @extend_schema(summary="Input for an interactive exec session (the raw request body; eof=true closes it)",
                   parameters=[_param("eof", "close the session's input after this", OpenApiTypes.BOOL)],
                   request={"application/octet-stream": OpenApiTypes.BINARY},
                   responses={204: None, **errors(400, 403, 404)})
    @action(detail=True, methods=["post"], url_path=r"exec/(?P<session>[A-Za-z0-9]{1,64})/input",
            parser_classes=[])
    def exec_input(self, request: Request, pk=None, session=None) -> Response:
        container = self._container(pk, "container.exec")
        exec_services.console_check(request.user, container, request)
        exec_services.exec_job(request.user, container, session)
        data = request._request.read(exec_services.MAX_INPUT + 1)
        if len(data) > exec_services.MAX_INPUT:
            raise services.ServiceError("invalid", f"at most {exec_services.MAX_INPUT} bytes of input per request",
                                        field="body")
        exec_services.send_input(session, data, eof=request.query_params.get("eof") in ("1", "true", "yes"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="The processes of a running container, as it and as the host see them "
                           "(job container.top; viewer role)", responses={200: TOP, 202: s.JobSerializer, **errors(403, 404, 409, 502)})
    @action(detail=True, methods=["get"])
    def top(self, request: Request, pk=None) -> Response:
        container = self._container(pk, "container.top")
        job = exec_services.top(request.user, container, request)
        done = exec_services.wait_finished(job)
        return Response(done.result) if done else _job_response(job, request)

    @extend_schema(summary="Resource use: the latest sample and the history (viewer role)",
                   parameters=[_param("seconds", "history span (10 to 86400; beyond an hour: per minute)",
                                      {"type": "integer", "minimum": 10, "maximum": 86400})],
                   responses={200: STATS, **errors(400, 403, 404)})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk=None) -> Response:
        container = self._container(pk, "container.stats")
        return Response(exec_services.stats(request.user, container, seconds=request.query_params.get("seconds"),
                                            request=request))

    @extend_schema(summary="List a directory of a running container (job container.files; operator role)",
                   parameters=[PATH], responses={200: FILES, 202: s.JobSerializer, **errors(400, 403, 404, 409, 502)})
    @action(detail=True, methods=["get"])
    def files(self, request: Request, pk=None) -> Response:
        container = self._container(pk, "container.files")
        job = exec_services.list_files(request.user, container, request.query_params.get("path") or "/", request)
        done = exec_services.wait_finished(job)
        return Response(done.result) if done else _job_response(job, request)

    @extend_schema(methods=["GET"], summary="A file or directory of a running container as a tar (operator role)",
                   parameters=[PATH],
                   responses={(200, "application/x-tar"): OpenApiTypes.BINARY, 202: s.JobSerializer,
                              **errors(400, 403, 404, 409, 502)})
    @extend_schema(methods=["PUT"], summary="Extract a tar into a directory of a running container "
                                            "(job container.archive_put; operator role)",
                   parameters=[PATH], request={"application/x-tar": OpenApiTypes.BINARY,
                                               "application/octet-stream": OpenApiTypes.BINARY},
                   responses={200: s.JobSerializer, 202: s.JobSerializer, **errors(400, 403, 404, 409, 413, 502)})
    @action(detail=True, methods=["get", "put"], content_negotiation_class=LenientNegotiation,
            parser_classes=[FileUploadParser, MultiPartParser])
    def archive(self, request: Request, pk=None):
        path = request.query_params.get("path")
        if request.method == "PUT":
            container = self._container(pk, "container.archive_put")
            from .uploads import stage_raw_body

            staged = stage_raw_body(request._request) if "multipart" not in (request.content_type or "") \
                else request.data.get("file")
            job = exec_services.archive_put(request.user, container, path, staged, request)
            done = exec_services.wait_finished(job)
            return Response(s.JobSerializer(done, context={"request": request}).data) if done \
                else _job_response(job, request)
        container = self._container(pk, "container.archive_get")
        job = exec_services.archive_get(request.user, container, path, request)
        done = exec_services.wait_finished(job)
        return services.download_response(request.user, done, request) if done else _job_response(job, request)


HOST_STATS = inline_serializer("HostStats", {"host": rf.IntegerField(), "available": rf.BooleanField(),
                                             "containers": rf.ListField(child=rf.DictField())})


class HostStatsViewSet(ThrottleFirst, viewsets.GenericViewSet):
    """GET /api/v1/hosts/{id}/stats (registered beside HostViewSet under the same prefix)."""

    queryset = Host.objects.none()
    lookup_value_regex = "[^/]+"

    @extend_schema(summary="The latest resource figures of every running container of a host you may see",
                   responses={200: HOST_STATS, **errors(404)})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk=None) -> Response:
        from .. import bounds

        host = Host.objects.filter(pk=bounds.as_id(pk, Host) or 0).first()
        if host is None:
            raise services.ServiceError("not_found", "no such host")
        return Response(exec_services.host_stats(request.user, host))
