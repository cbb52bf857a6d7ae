"""/api/v1/images: list, remove, save, tag, share, and import/load uploads; changes go through
containers/services (checks, validation, audit, job) and answer 202 with the Job."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, services, transfer_files
from ..models import Image
from . import registries, uploads
from . import serializers as s
from .common import ThrottleFirst, _idempotency_key, _job_response, _object_for_action, _valid, pick_host
from .params import query_bool
from .schema import IDEMPOTENCY, PAGE, SEARCH, _param, errors, ordering_param

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
        params = self.request.query_params if self.action == "list" else None
        return selectors.images(self.request.user, params)

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

    # --- registries and builds (issue 15): the bodies are in registries.py ---------------------------------

    @registries.PULL_SCHEMA
    @action(detail=False, methods=["post"])
    def pull(self, request: Request) -> Response:
        return registries.pull(request)

    @registries.PUSH_SCHEMA
    @action(detail=True, methods=["post"])
    def push(self, request: Request, pk=None) -> Response:
        return registries.push(request, self._image(pk, "image.push"))

    @registries.BUILD_SCHEMA
    @action(detail=False, methods=["post"], parser_classes=registries.BUILD_PARSERS)
    def build(self, request: Request) -> Response:
        return registries.build(request)

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
            if staged is not None:
                transfer_files.release_path(staged)

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
