"""/api/v1/registries (saved credentials: the secret goes in, never out) and the bodies of
POST /api/v1/images/pull, /images/{id}/push and /images/build (wired in images.py), all through
containers/services/registries.py."""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import RegistryCredential
from ..services import registries
from .common import ThrottleFirst, _idempotency_key, _job_response, _valid, pick_host
from .schema import IDEMPOTENCY, PAGE, errors
from .serializers import Bool, HostField, Int, Str


class RegistryCredentialSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = RegistryCredential
        fields = ["id", "registry", "username", "team", "team_name", "insecure", "created", "last_used"]
        read_only_fields = fields


class RegistryCredentialCreateSerializer(serializers.Serializer):
    registry = Str(max_length=255, help_text="docker.io, ghcr.io, registry.example:5000")
    username = Str(max_length=255)
    password = Str(max_length=registries.MAX_SECRET, write_only=True, help_text="password or access token; "
                                                                                "stored encrypted, never shown")
    team = Int(required=False, allow_null=True, help_text="a team's credential (needs the team's admin role)")
    insecure = Bool(required=False, default=False, help_text="allow plain HTTP / unverified TLS")


class PullSerializer(serializers.Serializer):
    ref = Str(max_length=600, help_text="nginx, nginx:1.25, ghcr.io/org/app:1, host:5000/app@sha256:…")
    name = Str(required=False, allow_blank=True, max_length=400,
               help_text="local name:tag (default: the familiar name, host:port written host-port)")
    host = HostField(required=False, allow_null=True)
    team = Int(required=False, allow_null=True)
    platform = Str(required=False, allow_blank=True, max_length=64, help_text="os/arch[/variant]")
    credential = Int(required=False, allow_null=True, help_text="a saved credential's id (default: yours, "
                                                                  "then the team's, for that registry)")
    insecure = Bool(required=False, default=False)


class PushSerializer(serializers.Serializer):
    destination = Str(required=False, allow_blank=True, max_length=600,
                      help_text="registry reference with a tag (default: the image's name)")
    credential = Int(required=False, allow_null=True)
    insecure = Bool(required=False, default=False)


class BuildJsonSerializer(serializers.Serializer):
    ref = Str(max_length=400, help_text="name[:tag] of the image to build")
    dockerfile = Str(required=False, allow_blank=True, max_length=registries.MAX_DOCKERFILE,
                     help_text="the Containerfile's text (default: Containerfile/Dockerfile of the context)")
    host = HostField(required=False, allow_null=True)
    team = Int(required=False, allow_null=True)
    build_args = serializers.JSONField(required=False, allow_null=True, help_text='an object, e.g. {"VERSION": "1"} (in a form: '
                                                                 'its JSON text)')
    no_cache = Bool(required=False, default=False)
    target = Str(required=False, allow_blank=True, max_length=128)


class BuildFormSerializer(BuildJsonSerializer):
    file = serializers.FileField(required=False, help_text="the build context as a tar (tar.gz, tar.zst)")


@extend_schema_view(
    list=extend_schema(summary="Your and your teams' saved registry credentials (never the secret)",
                       parameters=PAGE, responses={200: RegistryCredentialSerializer(many=True),
                                                   **errors(400, 404)}),
    retrieve=extend_schema(summary="A saved registry credential", responses={200: RegistryCredentialSerializer,
                                                                             **errors(404)}),
)
class RegistryViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RegistryCredentialSerializer
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    def get_queryset(self):
        return registries.visible_credentials(self.request.user)

    def get_object(self):
        return registries.get_credential(self.request.user, self.kwargs.get("pk"), field="id")

    @extend_schema(summary="Save a credential for a registry (replaces yours or the team's for it)",
                   request=RegistryCredentialCreateSerializer,
                   responses={201: RegistryCredentialSerializer, **errors(400, 403, 404)})
    def create(self, request: Request) -> Response:
        body = _valid(RegistryCredentialCreateSerializer, request)
        row = registries.save_credential(request.user, request=request, **body)
        return Response(RegistryCredentialSerializer(row).data, status=201)

    @extend_schema(summary="Remove a saved credential", request=None, responses={204: None, **errors(403, 404)})
    def destroy(self, request: Request, pk=None) -> Response:
        registries.delete_credential(request.user, pk, request=request)
        return Response(status=204)


PULL_SCHEMA = extend_schema(summary="Pull an image from a registry (job image.pull)", request=PullSerializer,
                            parameters=[IDEMPOTENCY], responses={202: None, **errors(400, 403, 404, 409)})
PUSH_SCHEMA = extend_schema(summary="Push an image to a registry (job image.push)", request=PushSerializer,
                            parameters=[IDEMPOTENCY], responses={202: None, **errors(400, 403, 404, 409)})
BUILD_SCHEMA = extend_schema(
    summary="Build an image from a Containerfile (job image.build)",
    description="A multipart form: `ref`, and the context as a tar in `file` and/or the Containerfile's text in "
                "`dockerfile`; the job's messages carry the build's log.",
    request={"multipart/form-data": BuildFormSerializer, "application/json": BuildJsonSerializer},
    parameters=[IDEMPOTENCY],
    responses={202: None, **errors(400, 403, 404, 409, 413)})


def pull(request: Request) -> Response:
    body = _valid(PullSerializer, request)
    host = pick_host(request.user, body.pop("host", None), None)
    job = registries.pull_image(request.user, host=host, request=request, idempotency_key=_idempotency_key(request),
                                **body)
    return _job_response(job, request)


def push(request: Request, image) -> Response:
    body = _valid(PushSerializer, request)
    job = registries.push_image(request.user, image, request=request, idempotency_key=_idempotency_key(request),
                                **body)
    return _job_response(job, request)


def build(request: Request) -> Response:
    from .. import services

    is_json = (request.content_type or "").split(";")[0].strip().lower() == "application/json"
    form = (BuildJsonSerializer if is_json else BuildFormSerializer)(data=request.data)
    form.is_valid(raise_exception=True)
    opts = dict(form.validated_data)
    build_args = opts.pop("build_args", None) or {}
    if isinstance(build_args, str):
        try:
            build_args = json.loads(build_args) if build_args.strip() else {}
        except ValueError:
            raise services.ServiceError("invalid", "build_args must be a JSON object", field="build_args") from None
    host = pick_host(request.user, opts.pop("host", None), None)
    job = registries.build_image(request.user, host=host, upload=opts.pop("file", None), build_args=build_args,
                                 request=request, idempotency_key=_idempotency_key(request), **opts)
    return _job_response(job, request)


BUILD_PARSERS = [MultiPartParser, JSONParser]  # JSON: a Containerfile without a context
