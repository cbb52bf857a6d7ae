"""API endpoints. Reads come from the permission-filtered querysets; every change goes through
containers/services.py (checks, validation, audit, job) and answers 202 with the Job."""

from __future__ import annotations

import datetime
import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotAcceptable, NotFound, UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from workers.engine.containers.spec import ContainerSpec

from .. import audit, bounds, permissions, services
from .. import jobs as job_dispatch
from ..models import ApiToken, Container, Host, Image, Job, Team, TeamMembership
from . import auth, logs, uploads
from . import limits as api_limits
from . import serializers as s
from .params import query_bool

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


def _idempotency_key(request: Request) -> str | None:
    return request.headers.get("Idempotency-Key") or None


def _job_response(job: Job, request: Request) -> Response:
    return Response(s.JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def _id_or_name(value: str, id_field: str, name_field: str) -> Q:
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return Q(**{name_field: value})
    name = id_field.removesuffix("_id")
    return Q(**{id_field: _filter_id(value, name, {"host": Host, "team": Team, "image": Image}.get(name)
                                                  or get_user_model())})


def owner_filters(qs, params):
    """The host, owner and team filters every list of owned objects takes (id or name each)."""
    for key, id_field, name_field in (("host", "host_id", "host__name"), ("owner", "owner_id", "owner__username"),
                                      ("team", "team_id", "team__name")):
        if params.get(key):
            qs = qs.filter(_id_or_name(params[key], id_field, name_field))
    return qs


def _filter_id(value: str, name: str, model) -> int:
    """A digit string as an id of `model`, or a 400 naming the filter if no id can be that large."""
    top = bounds.id_max(model)
    if len(value) > len(str(top)) or int(value) > top:
        raise services.ServiceError("invalid", f"{name} must be an id (at most {top}) or a name, not "
                                               f"{value[:30]}{'…' if len(value) > 30 else ''}", field=name)
    return int(value)


def _ordering(qs, request: Request, allowed: list[str], default: list[str]):
    if "ordering" not in request.query_params:
        return qs.order_by(*default)
    raw = request.query_params["ordering"].strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise services.ServiceError("invalid", f"give a sort key: {', '.join(allowed)}", field="ordering")
    for key in keys:
        if key.lstrip("-") not in allowed:
            raise services.ServiceError("invalid", f"cannot order by {key!r}: use {', '.join(allowed)}",
                                        field="ordering")
    return qs.order_by(*keys, "-pk")


def _choice(request: Request, name: str, choices: list[str]) -> list[str] | None:
    if name not in request.query_params:
        return None
    raw = request.query_params[name].strip()
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise services.ServiceError("invalid", f"{name} is empty: use {', '.join(choices)}", field=name)
    bad = [v for v in values if v not in choices]
    if bad:
        raise services.ServiceError("invalid", f"unknown {name} {bad[0]!r}: use {', '.join(choices)}", field=name)
    return values


# A label filter is blank (ignored), `key` or `key=value` with a key that is not blank: one definition for
# the schema and the server, so that what the schema calls valid is accepted.
LABEL_FILTER_PATTERN = r"^(?:\s*$|[^=]*[^=\s])"


def _label_filter(qs, request: Request):
    for i, raw in enumerate(request.query_params.getlist("label")):
        if not re.search(LABEL_FILTER_PATTERN, raw):
            raise services.ServiceError("invalid", "label filters look like label=key or label=key=value",
                                        field="label")
        if not raw.strip():
            continue
        key, eq, value = raw.partition("=")
        key = key.strip()
        if eq:
            qs = qs.alias(**{f"_label{i}": KeyTransform(key, "labels")}).filter(**{f"_label{i}": value})
        else:
            qs = qs.filter(labels__has_key=key)
    return qs


def _object_for_action(model, pk: Any, request: Request, kind: str):
    """The row an action names, visible or not: the service decides and audits. Ids that do not exist
    answer exactly like invisible ones."""
    ident = bounds.as_id(pk, model)
    obj = model.objects.select_related("host").filter(pk=ident).first() if ident else None
    if obj is None:
        audit.record(request, request.user, kind, (model._meta.model_name, str(pk)[:100]), "denied",
                     {"code": "not_found"}, status_code=404)
        raise services.ServiceError("not_found", f"no such {model._meta.model_name}")
    return obj


def pick_host(user, host_value: Any, image_value: Any) -> Host:
    """The host a user names; else the host of an image given by id; else the least loaded online host."""
    if host_value not in (None, ""):
        return services._as_host(host_value)
    if isinstance(image_value, int) or (isinstance(image_value, str) and image_value.isascii() and image_value.isdigit()):
        image = permissions.visible_images(user).filter(pk=bounds.as_id(image_value, Image) or 0).first()
        if image is None:
            raise services.ServiceError("no_such_image", f"no image #{image_value}", field="image")
        return image.host
    host = (Host.objects.online().annotate(n=Count("containers")).order_by("n", "name").first()
            or Host.objects.order_by("name").first())
    if host is None:
        raise services.ServiceError("invalid", "there is no host to run on", field="host")
    return host


class LenientNegotiation(DefaultContentNegotiation):
    """For endpoints answering with a file or text: an Accept of text/plain or application/x-tar must not
    turn into 406 just because the errors and the 202 Job are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class ThrottleFirst:
    """Signed-out clients and bad tokens hit the anonymous rate limit before being told 401, so
    guessing tokens is throttled too (DRF checks permissions before throttles)."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        try:
            user = request.user
        except AuthenticationFailed:
            self.check_throttles(request)  # the failed attempt leaves the request anonymous
            raise
        if not user.is_authenticated:
            self.check_throttles(request)
        super().initial(request, *args, **kwargs)


# --- hosts ----------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List hosts", parameters=[SEARCH, ordering_param(["name", "created"]), *PAGE],
                       responses={200: s.HostSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A host", responses={200: s.HostSerializer, **errors(404)}),
)
class HostViewSet(ThrottleFirst, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.HostSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON

    def get_queryset(self):
        qs = permissions.visible_hosts(self.request.user)
        if self.action == "list":
            search = self.request.query_params.get("search", "").strip()
            if search:
                qs = qs.filter(name__icontains=search)
            qs = _ordering(qs, self.request, ["name", "created"], ["name"])
        return qs


# --- images ---------------------------------------------------------------------------------------------

IMAGE_FILTERS = [
    _param("host", "host id or name"), _param("owner", "owner id or username"), _param("team", "team id or name"),
    _param("name", "exact image name"), _param("shared", "true/false", OpenApiTypes.BOOL), SEARCH,
    ordering_param(["name", "tag", "created", "size"]), *PAGE,
]


@extend_schema_view(
    list=extend_schema(summary="List images", parameters=IMAGE_FILTERS,
                       responses={200: s.ImageSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="An image", responses={200: s.ImageSerializer, **errors(404)}),
)
class ImageViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ImageSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON

    def get_queryset(self):
        qs = permissions.visible_images(self.request.user)
        if self.action != "list":
            return qs
        p = self.request.query_params
        qs = owner_filters(qs, p)
        if p.get("name"):
            qs = qs.filter(name=p["name"])
        if "shared" in p:
            qs = qs.filter(shared=query_bool(p, "shared"))
        if p.get("search", "").strip():
            qs = qs.filter(name__icontains=p["search"].strip())
        return _ordering(qs, self.request, ["name", "tag", "created", "size"], ["name", "tag"])

    def _image(self, pk, kind: str) -> Image:
        return _object_for_action(Image, pk, self.request, kind)

    @extend_schema(summary="Remove an image (job image.remove)", parameters=[
        _param("force", "remove even if containers use it", OpenApiTypes.BOOL), IDEMPOTENCY],
        request=None, responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    def destroy(self, request: Request, pk=None) -> Response:
        image = self._image(pk, "image.remove")
        job = services.image_action(request.user, image, "remove",
                                    params={"force": query_bool(request.query_params, "force")}, request=request,
                                    idempotency_key=_idempotency_key(request))
        return _job_response(job, request)

    @extend_schema(summary="Save an image as a docker-archive or oci-archive (job image.save; download it at "
                           "/jobs/{id}/download)", request=s.SaveSerializer, parameters=[IDEMPOTENCY],
                   responses={202: s.JobSerializer, **errors(400, 403, 404)})
    @action(detail=True, methods=["post"])
    def save(self, request: Request, pk=None) -> Response:
        image = self._image(pk, "image.save")
        body = _valid(s.SaveSerializer, request)
        job = services.image_action(request.user, image, "save", params=body, request=request,
                                    idempotency_key=_idempotency_key(request))
        return _job_response(job, request)

    @extend_schema(summary="Tag an image with another name:tag (job image.tag)", request=s.TagSerializer,
                   parameters=[IDEMPOTENCY], responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def tag(self, request: Request, pk=None) -> Response:
        image = self._image(pk, "image.tag")
        body = _valid(s.TagSerializer, request)
        job = services.image_action(request.user, image, "tag", params=body, request=request,
                                    idempotency_key=_idempotency_key(request))
        return _job_response(job, request)

    @extend_schema(summary="Move an image to a team and/or share it with everyone", request=s.ShareSerializer,
                   responses={200: s.ImageSerializer, **errors(400, 403, 404)})
    @action(detail=True, methods=["post"])
    def share(self, request: Request, pk=None) -> Response:
        image = self._image(pk, "image.share")
        body = _valid(s.ShareSerializer, request)
        image = services.share_image(request.user, image, body.get("team"), body.get("shared", False),
                                     request=request)
        return Response(s.ImageSerializer(image, context={"request": request}).data)

    def _upload(self, request: Request, kind: str, form_serializer) -> Response:
        ctype = (request.content_type or "").split(";")[0].strip().lower()
        handler: uploads.StagingUploadHandler | None = None
        staged = None  # a file this request put in the uploads dir
        handed = None  # the one given to the service, which owns it from then on (deletes it on refusal)
        try:
            if ctype == "multipart/form-data":
                handler = uploads.StagingUploadHandler(request._request)
                try:
                    request._request.upload_handlers = [handler]
                except AttributeError:  # parsed already (session CSRF check): Django's temporary file is used
                    handler = None
                form = form_serializer(data=request.data)
                if handler is not None and handler.too_big:
                    raise services.ServiceError("invalid", "the upload is too large", field="file", status=413)
                form.is_valid(raise_exception=True)
                opts = dict(form.validated_data)
                upload = opts.pop("file")
                staged = getattr(upload, "staged_path", None)
                source = str(staged) if staged else upload
            elif ctype in uploads.RAW_TYPES:
                q = request.query_params
                opts = {"host": q.get("host"), "team": q.get("team") or None, "shared": query_bool(q, "shared"),
                        "ref": q.get("ref", ""), "message": q.get("message", "")}
                if kind == "image.import" and not opts["ref"]:
                    raise services.ServiceError("invalid", "the ref query parameter (name[:tag]) is required",
                                                field="ref")
                staged = uploads.stage_raw_body(request._request)
                source = str(staged)
            else:
                raise UnsupportedMediaType(ctype or "(none)")
            host = pick_host(request.user, opts.get("host"), None)
            common = {"host": host, "upload": source, "team": opts.get("team"), "shared": opts.get("shared"),
                      "request": request, "idempotency_key": _idempotency_key(request)}
            handed = staged
            if kind == "image.import":
                job = services.import_image(request.user, ref=opts.get("ref"), message=opts.get("message") or "",
                                            **common)
            else:
                job = services.load_images(request.user, **common)
            return _job_response(job, request)
        finally:
            if handler is not None:
                handler.cleanup(keep=handed)
            elif staged is not None and handed is None:
                staged.unlink(missing_ok=True)

    @extend_schema(
        summary="Import a root filesystem tarball as an image (job image.import)",
        description="Send the tarball (tar, tar.gz or tar.zst) as the request body with Content-Type "
                    "application/x-tar, application/gzip, application/zstd or application/octet-stream, and the "
                    "options as query parameters; the body is streamed to the uploads directory in chunks. "
                    "A multipart form (field `file`, plus the options as fields) is accepted too, for "
                    "browsers (Django spools it to disk as it arrives).",
        request={"application/x-tar": OpenApiTypes.BINARY, "application/gzip": OpenApiTypes.BINARY,
                 "application/zstd": OpenApiTypes.BINARY, "application/octet-stream": OpenApiTypes.BINARY},
        parameters=[_param("ref", "name[:tag] of the new image (required)"), _param("host", "host id or name"),
                    _param("team", "team id", OpenApiTypes.INT),
                    _param("shared", "share with everyone", OpenApiTypes.BOOL),
                    _param("message", "commit message"), IDEMPOTENCY],
        responses={202: s.JobSerializer, **errors(400, 403, 404, 409, 413, 415)})  # 409: Idempotency-Key reused
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_(self, request: Request) -> Response:
        return self._upload(request, "image.import", s.ImportFormSerializer)

    @extend_schema(
        summary="Load images from a docker-archive or oci-archive (job image.load)",
        description="The archive is the request body (application/x-tar or application/octet-stream), streamed "
                    "to the uploads directory; options are query parameters. A multipart form (field `file`) "
                    "is accepted too (see import).",
        request={"application/x-tar": OpenApiTypes.BINARY, "application/octet-stream": OpenApiTypes.BINARY},
        parameters=[_param("host", "host id or name"), _param("team", "team id", OpenApiTypes.INT),
                    _param("shared", "share with everyone", OpenApiTypes.BOOL), IDEMPOTENCY],
        responses={202: s.JobSerializer, **errors(400, 403, 404, 409, 413, 415)})  # 409: Idempotency-Key reused
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser])
    def load(self, request: Request) -> Response:
        return self._upload(request, "image.load", s.LoadFormSerializer)


def _valid(serializer_class, request: Request) -> dict[str, Any]:
    data = request.data if request.data is not None else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- containers -----------------------------------------------------------------------------------------

CONTAINER_FILTERS = [
    _param("state", "container state (several: comma-separated)", enum=list(Container.State.values)),
    _param("host", "host id or name"), _param("image", "image id or name:tag"),
    _param("owner", "owner id or username"), _param("team", "team id or name"),
    _param("label", "key or key=value (repeat for several; all must match)",
           {"type": "array", "items": {"type": "string", "pattern": LABEL_FILTER_PATTERN}}), SEARCH,
    ordering_param(["name", "created", "state", "started", "finished"]), *PAGE,
]


def _action_schema(summary: str, body=None, extra: tuple[int, ...] = ()) -> Any:
    return extend_schema(summary=summary, request=body, parameters=[IDEMPOTENCY],
                         responses={202: s.JobSerializer, **errors(400, 403, 404, 409, *extra)})


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
        qs = permissions.visible_containers(self.request.user)
        if self.action != "list":
            return qs
        p = self.request.query_params
        states = _choice(self.request, "state", list(Container.State.values))
        if states:
            qs = qs.filter(state__in=states)
        if p.get("host"):
            qs = qs.filter(_id_or_name(p["host"], "host_id", "host__name"))
        if p.get("image"):
            value = p["image"].strip()
            if value.isascii() and value.isdigit():
                qs = qs.filter(image_id=_filter_id(value, "image", Image))
            else:
                ref = value if ":" in value.rsplit("/", 1)[-1] else f"{value}:latest"
                qs = qs.filter(Q(image_ref=value) | Q(image_ref=ref))
        if p.get("owner"):
            qs = qs.filter(_id_or_name(p["owner"], "owner_id", "owner__username"))
        if p.get("team"):
            qs = qs.filter(_id_or_name(p["team"], "team_id", "team__name"))
        qs = _label_filter(qs, self.request)
        if p.get("search", "").strip():
            qs = qs.filter(name__icontains=p["search"].strip())
        return _ordering(qs, self.request, ["name", "created", "state", "started", "finished"], ["-created"])

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
        host = pick_host(request.user, body.get("host"), body.get("image"))
        image = body["image"]
        if isinstance(image, int) or (str(image).isascii() and str(image).isdigit()):
            image = permissions.visible_images(request.user).filter(pk=bounds.as_id(image, Image) or 0).first()
            if image is None:
                raise services.ServiceError("no_such_image", f"no image #{body['image']}", field="image")
        spec = {k: body[k] for k in ContainerSpec.field_names() if k in body and k != "image"}
        container, job = services.create_container(
            request.user, host=host, image=image, name=body.get("name", ""), spec=spec,
            start=body.get("start", True), team=body.get("team"), request=request,
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


# --- jobs -----------------------------------------------------------------------------------------------

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
        qs = permissions.visible_jobs(self.request.user)
        if self.action != "list":
            return qs
        p = self.request.query_params
        states = _choice(self.request, "state", list(Job.State.values))
        if states:
            qs = qs.filter(state__in=states)
        if p.get("kind"):
            qs = qs.filter(kind=p["kind"])
        if p.get("host"):
            qs = qs.filter(_id_or_name(p["host"], "host_id", "host__name"))
        if p.get("target_type"):
            qs = qs.filter(target_type=p["target_type"])
        if p.get("target_id"):
            qs = qs.filter(target_id=p["target_id"])
        return _ordering(qs, self.request, ["created", "started", "finished", "state", "kind"], ["-created"])

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


# --- teams ----------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="Teams you belong to (all for superusers)", parameters=PAGE,
                       responses={200: s.TeamSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A team", responses={200: s.TeamSerializer, **errors(404)}),
)
class TeamViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TeamSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        return permissions.visible_teams(self.request.user).order_by("name")

    @extend_schema(summary="Create a team (superusers)", request=s.TeamCreateSerializer,
                   responses={201: s.TeamSerializer, **errors(400, 403, 409)})
    def create(self, request: Request) -> Response:
        if not request.user.is_superuser:
            audit.record(request, request.user, "team.create", None, "denied", {"code": "forbidden"},
                         status_code=403)
            raise services.ServiceError("forbidden", "only superusers create teams")
        body = _valid(s.TeamCreateSerializer, request)
        if Team.objects.filter(name=body["name"]).exists():
            raise services.ServiceError("conflict", f"a team named {body['name']} exists already", field="name")
        team = Team.objects.create(name=body["name"])
        audit.record(request, request.user, "team.create", team, "ok", status_code=201)
        return Response(s.TeamSerializer(team, context={"request": request}).data, status=201)

    def _team(self, pk, kind: str, action_name: str) -> Team:
        team = Team.objects.filter(pk=ident).first() if (ident := bounds.as_id(pk, Team)) else None
        try:
            permissions.check(self.request.user, action_name, team)
        except permissions.NotVisible:
            audit.record(self.request, self.request.user, kind, ("team", str(pk)[:100]), "denied",
                         {"code": "not_found"}, status_code=404)
            raise services.ServiceError("not_found", "no such team") from None
        except permissions.Forbidden:
            audit.record(self.request, self.request.user, kind, team, "denied", {"code": "forbidden"},
                         status_code=403)
            raise services.ServiceError("forbidden", "managing members needs the admin role") from None
        return team

    @extend_schema(methods=["GET"], summary="Members of a team", responses={200: s.MemberSerializer(many=True),
                                                                           **errors(404)})
    @extend_schema(methods=["POST"], summary="Add a member (team admins)", request=s.MemberAddSerializer,
                   responses={201: s.MemberSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request: Request, pk=None) -> Response:
        if request.method == "GET":
            team = self._team(pk, "team.members", "view")
            rows = TeamMembership.objects.filter(team=team).select_related("user").order_by("user__username")
            return Response(s.MemberSerializer(rows, many=True).data)
        team = self._team(pk, "team.member.add", "team.manage")
        body = _valid(s.MemberAddSerializer, request)
        user = get_user_model().objects.filter(username=body["username"]).first()
        if user is None:
            raise services.ServiceError("no_such_user", f"no user named {body['username']}", field="username",
                                        status=404)
        if TeamMembership.objects.filter(team=team, user=user).exists():
            raise services.ServiceError("conflict", f"{user.username} is a member already", field="username")
        row = TeamMembership.objects.create(team=team, user=user, role=body["role"])
        audit.record(request, request.user, "team.member.add", team, "ok",
                     {"user": row.user.username, "role": row.role}, status_code=201)
        return Response(s.MemberSerializer(row).data, status=201)

    @extend_schema(methods=["GET"], summary="A team's container limits", request=None,
                   responses={200: api_limits.TeamLimitsPayloadSerializer, **errors(404)})
    @extend_schema(methods=["PUT", "PATCH"], summary="Set a team's limits (superusers; PUT resets fields not given)",
                   request=api_limits.TeamLimitsSerializer,
                   responses={200: api_limits.TeamLimitsPayloadSerializer, **errors(400, 403, 404)})
    @action(detail=True, methods=["get", "put", "patch"], url_path="limits", pagination_class=None)
    def limits(self, request: Request, pk=None) -> Response:
        team = self._team(pk, "team.limits", "view")
        if request.method != "GET":
            values = _valid(api_limits.TeamLimitsSerializer, request)
            services.set_team_limits(request.user, team, values, replace=request.method == "PUT", request=request)
        return Response(api_limits.payload(team))

    @extend_schema(methods=["PATCH"], summary="Change a member's role (team admins)",
                   request=s.MemberRoleSerializer, responses={200: s.MemberSerializer, **errors(400, 403, 404, 409)},
                   parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @extend_schema(methods=["DELETE"], summary="Remove a member (team admins)", request=None,
                   responses={204: None, **errors(403, 404, 409)},
                   parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[^/]+)")
    def member(self, request: Request, pk=None, user_id=None) -> Response:
        kind = "team.member.remove" if request.method == "DELETE" else "team.member.role"
        team = self._team(pk, kind, "team.manage")
        user_pk = bounds.as_id(user_id, get_user_model())
        row = (TeamMembership.objects.filter(team=team, user_id=user_pk).select_related("user").first()
               if user_pk else None)
        if row is None:
            raise services.ServiceError("not_found", "no such member")
        new_role = _valid(s.MemberRoleSerializer, request)["role"] if request.method == "PATCH" else None
        if row.role == "admin" and new_role != "admin":
            if not TeamMembership.objects.filter(team=team, role="admin").exclude(pk=row.pk).exists():
                raise services.ServiceError("conflict", "a team keeps at least one admin")
        if request.method == "DELETE":
            row.delete()
            audit.record(request, request.user, kind, team, "ok", {"user": row.user.username}, status_code=204)
            return Response(status=204)
        before = row.role
        row.role = new_role
        row.save(update_fields=["role"])
        audit.record(request, request.user, kind, team, "ok",
                     {"user": row.user.username, "before": before, "after": new_role}, status_code=200)
        return Response(s.MemberSerializer(row).data)


# --- tokens ---------------------------------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="Your API tokens", parameters=PAGE,
                       responses={200: s.TokenSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="One of your API tokens", responses={200: s.TokenSerializer, **errors(404)}),
)
class TokenViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TokenSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        # A revoked token is deleted as far as the API goes (GET and DELETE answer 404); the row stays for
        # the record and the dashboard's token page.
        return permissions.visible_tokens(self.request.user).filter(revoked__isnull=True)

    @extend_schema(summary="Create a token (the response shows it once)", request=s.TokenCreateSerializer,
                   responses={201: s.TokenCreatedSerializer, **errors(400)})
    def create(self, request: Request) -> Response:
        body = _valid(s.TokenCreateSerializer, request)
        row, token = auth.create_token(request.user, body["name"])
        audit.record(request, request.user, "token.create", row, "ok", {"name": row.name}, status_code=201)
        data = dict(s.TokenSerializer(row).data, token=token)
        return Response(data, status=201)

    @extend_schema(summary="Revoke a token (then gone: GET and DELETE answer 404)", request=None,
                   responses={200: s.TokenSerializer, **errors(404)})
    def destroy(self, request: Request, pk=None) -> Response:
        row = ApiToken.objects.filter(pk=ident).first() if (ident := bounds.as_id(pk, ApiToken)) else None
        # revoke once: the update that sets `revoked` is the one that answers 200
        done = row is not None and row.user_id == request.user.pk and ApiToken.objects.filter(
            pk=row.pk, revoked__isnull=True).update(revoked=timezone.now())
        if not done:
            audit.record(request, request.user, "token.revoke", ("apitoken", str(pk)[:100]), "denied",
                         {"code": "not_found"}, status_code=404)
            raise services.ServiceError("not_found", "no such token")
        row.refresh_from_db()
        audit.record(request, request.user, "token.revoke", row, "ok", {"name": row.name}, status_code=200)
        return Response(s.TokenSerializer(row).data)


# --- audit ----------------------------------------------------------------------------------------------

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
        qs = permissions.visible_audit(self.request.user)
        if self.action != "list":
            return qs
        return filter_audit(qs, self.request.query_params, strict=True)


def filter_audit(qs, params, *, strict: bool = False):
    """Audit list filters shared by the API and the dashboard page (whose form sends empty fields; the
    API (`strict`) refuses an empty or unknown result and empty times)."""
    if strict and "result" in params and params["result"] not in audit.RESULTS:
        raise services.ServiceError("invalid", f"result must be one of {', '.join(audit.RESULTS)}", field="result")
    for name in ("action", "result", "target_type", "target_id", "via"):
        value = (params.get(name) or "").strip()
        if value:
            qs = qs.filter(**{name: value})
    if (params.get("actor") or "").strip():
        qs = qs.filter(actor_name=params["actor"].strip())
    if (params.get("team") or "").strip():
        qs = qs.filter(_id_or_name(params["team"], "team_id", "team__name"))
    for name, lookup in (("since", "created__gte"), ("until", "created__lt")):
        raw = (params.get(name) or "").strip()
        if raw or (name in params and strict):
            try:
                when = parse_datetime(raw)
            except ValueError:
                when = None
            if when is None:
                raise services.ServiceError("invalid", f"{name} must be an ISO 8601 time like "
                                                       "2026-01-31T12:00:00Z", field=name)
            if timezone.is_naive(when):
                when = timezone.make_aware(when, datetime.UTC)
            qs = qs.filter(**{lookup: when})
    return qs

