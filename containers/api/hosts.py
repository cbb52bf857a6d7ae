"""/api/v1/hosts: the hosts a user may see; admins set labels and cordon (PATCH), drain, and manage the join
tokens new machines join with (/api/v1/hosts/join-tokens: a new token is shown once)."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import join, selectors, services
from ..models import JoinToken
from ..services import hosts as host_services
from ..services.drain_move import move_off
from . import serializers as s
from .common import ThrottleFirst, _valid
from .schema import PAGE, SEARCH, errors, ordering_param

MAX_EXPIRY = 366 * 86400


class HostDetailSerializer(s.HostSerializer):
    join_token = serializers.IntegerField(source="join_token_id", read_only=True, allow_null=True)

    class Meta(s.HostSerializer.Meta):
        fields = [*s.HostSerializer.Meta.fields, "labels", "cordoned", "draining", "join_token"]


LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}(=[A-Za-z0-9._-]{0,63})?$"  # join.LABEL_KEY_RE / VALUE_RE


class HostUpdateSerializer(serializers.Serializer):
    labels = serializers.ListField(child=s.Str(max_length=127, validators=[RegexValidator(LABEL_PATTERN)]),
                                   required=False, allow_null=True, max_length=join.MAX_LABELS,
                                   help_text='e.g. ["ssd", "zone=a"]; replaces the host\'s labels (null: unchanged)')
    cordoned = s.Bool(required=False, help_text="true: takes no new containers; false: uncordon (ends a drain)")
    offline_job_timeout = s.Int(required=False, allow_null=True, min_value=0, max_value=MAX_EXPIRY,
                                help_text="seconds a job queued for this host waits while it is offline before it "
                                          "fails (0: until it is back; null: the BERTH_OFFLINE_JOB_TIMEOUT setting)")


class DrainedContainerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()


class DrainMoveSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    host = serializers.CharField(required=False, help_text="where it is being moved")
    job = serializers.IntegerField(required=False, help_text="its container.move job")
    error = serializers.CharField(required=False, help_text="why it stays")


class DrainSerializer(serializers.Serializer):
    host = HostDetailSerializer()
    containers = DrainedContainerSerializer(many=True, help_text="still on the host (before any move)")
    note = serializers.CharField()
    moves = DrainMoveSerializer(many=True, help_text="with move: true, what happened to each container")


class DrainRequestSerializer(serializers.Serializer):
    move = s.Bool(required=False, default=False, help_text="also move each container to the least loaded online, "
                                                           "uncordoned host (one container.move job each)")


class JoinTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True,
                                       default=None)
    hosts = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    status = serializers.CharField(read_only=True)

    class Meta:
        model = JoinToken
        fields = ["id", "name", "prefix", "host_name", "created_by", "created", "expires", "last_used", "revoked",
                  "status", "hosts"]


class JoinTokenCreateSerializer(serializers.Serializer):
    name = s.Str(max_length=100, validators=[RegexValidator(r"\S")])
    expires_in = s.Int(required=False, allow_null=True, min_value=60, max_value=MAX_EXPIRY,
                       help_text="seconds from now after which joining is refused (none: never)")
    host_name = s.Str(required=False, allow_blank=True, max_length=63,
                      validators=[RegexValidator(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,62})?$")],
                      help_text="the only host name this token joins as (empty: any new one)")


class JoinTokenCreatedSerializer(JoinTokenSerializer):
    token = serializers.CharField(help_text="the join token: shown this once, only its hash is kept")

    class Meta(JoinTokenSerializer.Meta):
        fields = [*JoinTokenSerializer.Meta.fields, "token"]


@extend_schema_view(
    list=extend_schema(summary="List hosts", parameters=[SEARCH, ordering_param(["name", "created"]), *PAGE],
                       responses={200: HostDetailSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A host", responses={200: HostDetailSerializer, **errors(404)}),
)
class HostViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = HostDetailSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.hosts(self.request.user, params)

    @extend_schema(summary="Set a host's labels, cordon, offline job timeout (admins)", request=HostUpdateSerializer,
                   responses={200: HostDetailSerializer, **errors(400, 403, 404)})
    def partial_update(self, request: Request, pk=None) -> Response:
        body = _valid(HostUpdateSerializer, request)
        host = services.update_host(request.user, self.get_object(), labels=body.get("labels"),
                                    cordoned=body.get("cordoned"), request=request,
                                    **({"offline_job_timeout": body["offline_job_timeout"]}
                                       if "offline_job_timeout" in body else {}))
        return Response(HostDetailSerializer(host).data)

    @extend_schema(summary="Drain a host (admins): cordon it, list what is still there and, with move, move it off",
                   request=DrainRequestSerializer, responses={200: DrainSerializer, **errors(400, 403, 404)})
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, pk=None) -> Response:
        body = _valid(DrainRequestSerializer, request) if request.data else {}
        host, remaining = services.drain_host(request.user, self.get_object(), request=request)
        moves = move_off(request.user, host, request=request) if body.get("move") else []
        return Response({"host": HostDetailSerializer(host).data, "note": host_services.DRAIN_NOTE,
                         "containers": [{"id": c.pk, "name": c.name, "state": c.state} for c in remaining],
                         "moves": moves})


@extend_schema_view(
    list=extend_schema(summary="Join tokens (admins)", parameters=PAGE,
                       responses={200: JoinTokenSerializer(many=True), **errors(400, 403, 404)}),
    retrieve=extend_schema(summary="A join token (admins)", responses={200: JoinTokenSerializer, **errors(404)}),
)
class JoinTokenViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JoinTokenSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the model, not a request
            return JoinToken.objects.none()
        return services.join_tokens(self.request.user, request=self.request)

    def get_object(self) -> JoinToken:
        return host_services.as_join_token(self.request.user, self.kwargs["pk"], action="host.join_token.view",
                                            request=self.request)

    @extend_schema(summary="Make a join token (admins; the response shows it once)",
                   request=JoinTokenCreateSerializer, responses={201: JoinTokenCreatedSerializer, **errors(400, 403)})
    def create(self, request: Request) -> Response:
        # refused before the body is read: a non-admin learns nothing about what a valid body is
        host_services.require_admin(request, request.user, "host.join_token.create", ("jointoken", ""),
                                    "make join tokens")
        body = _valid(JoinTokenCreateSerializer, request)
        expires = timezone.now() + timedelta(seconds=body["expires_in"]) if body.get("expires_in") else None
        row, token = services.create_join_token(request.user, body["name"], expires=expires,
                                                host_name=body.get("host_name", ""), request=request)
        return Response(dict(JoinTokenSerializer(row).data, token=token), status=201)

    @extend_schema(summary="Revoke a join token (admins): no more joins, and its hosts' workers are refused at "
                           "their next heartbeat", request=None, responses={200: JoinTokenSerializer, **errors(404)})
    def destroy(self, request: Request, pk=None) -> Response:
        row = services.revoke_join_token(request.user, pk, request=request)
        return Response(JoinTokenSerializer(row).data)
