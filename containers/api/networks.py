"""/api/v1/networks: bridge networks, and connecting containers to them. Reads come from
permissions.visible_networks (own and team networks only); changes go through containers/services/networks.py
and answer 202 with the Job."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import permissions
from ..models import Container, Network
from ..services import networks as services_networks
from . import serializers as s
from .common import ThrottleFirst, _idempotency_key, _job_response, _object_for_action, _valid, pick_host
from .filters import _label_filter, _ordering, owner_filters
from .schema import IDEMPOTENCY, PAGE, SEARCH, _param, errors, ordering_param

ORDERING = ["name", "created"]


class NetworkContainerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    ip = serializers.CharField(allow_null=True)
    mac = serializers.CharField(allow_null=True)


class NetworkSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)
    containers = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True, help_text="ready, or removing")

    class Meta:
        model = Network
        fields = ["id", "name", "host", "host_name", "owner", "owner_id", "team", "subnet", "gateway", "internal",
                  "labels", "state", "containers", "created"]

    @extend_schema_field(NetworkContainerSerializer(many=True))
    def get_containers(self, net: Network) -> list[dict]:
        out = []
        for c in net.containers.all():
            att = ((c.network or {}).get("networks") or {}).get(net.engine_name) or {}
            out.append({"id": c.pk, "name": c.name, "ip": att.get("ip"), "mac": att.get("mac")})
        return out


class NetworkCreateSerializer(serializers.Serializer):
    name = s.Str(max_length=48, help_text="unique in your name space (or the team's) on the host")
    host = s.HostField(required=False, allow_null=True, help_text="host id or name (default: the least loaded "
                                                                  "online host)")
    team = s.Int(required=False, allow_null=True, help_text="team id the network belongs to (its name space)")
    subnet = s.Str(required=False, allow_null=True, allow_blank=True, max_length=43,
                   help_text="IPv4 subnet, e.g. 10.90.1.0/24 (default: a free /24 the host chooses)")
    gateway = s.Str(required=False, allow_null=True, allow_blank=True, max_length=45)
    internal = s.Bool(required=False, default=False, help_text="no outbound access")
    labels = serializers.DictField(child=s.Str(allow_blank=True), required=False, allow_null=True)


class NetworkCreatedSerializer(serializers.Serializer):
    network = NetworkSerializer()
    job = s.JobSerializer()


class ConnectSerializer(serializers.Serializer):
    container = s.Int(help_text="id of a container of the same owner (or team) on the same host")
    aliases = serializers.ListField(child=s.Str(max_length=63), required=False, allow_null=True,
                                    help_text="more DNS names on this network")


FILTERS = [_param("host", "host id or name"), _param("owner", "owner id or username"),
           _param("team", "team id or name"), _param("name", "exact network name"),
           _param("label", "key or key=value (repeat for several; all must match)", many=True), SEARCH,
           ordering_param(ORDERING), *PAGE]


@extend_schema_view(
    list=extend_schema(summary="List networks (yours and your teams')", parameters=FILTERS,
                       responses={200: NetworkSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A network", responses={200: NetworkSerializer, **errors(404)}),
)
class NetworkViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NetworkSerializer
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    def get_queryset(self):
        qs = permissions.visible_networks(self.request.user).prefetch_related("containers")
        if self.action != "list":
            return qs
        p = self.request.query_params
        qs = owner_filters(qs, p)
        if p.get("name"):
            qs = qs.filter(name=p["name"])
        qs = _label_filter(qs, self.request)
        if p.get("search", "").strip():
            qs = qs.filter(name__icontains=p["search"].strip())
        return _ordering(qs, self.request, ORDERING, ["name", "-created"])

    @extend_schema(summary="Create a network (job network.create)", request=NetworkCreateSerializer,
                   parameters=[IDEMPOTENCY], responses={202: NetworkCreatedSerializer, **errors(400, 403, 404, 409)})
    def create(self, request: Request) -> Response:
        body = _valid(NetworkCreateSerializer, request)
        host = pick_host(request.user, body.get("host"), None)
        net, job = services_networks.create_network(
            request.user, host=host, name=body["name"], team=body.get("team"), subnet=body.get("subnet"),
            gateway=body.get("gateway"), internal=body.get("internal", False), labels=body.get("labels"),
            request=request, idempotency_key=_idempotency_key(request))
        context = {"request": request}
        data = {"network": NetworkSerializer(net, context=context).data if net is not None else None,
                "job": s.JobSerializer(job, context=context).data}
        headers = {"Location": f"/api/v1/networks/{net.pk}"} if net is not None else {}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(summary="Remove a network (job network.remove; refused while containers are on it)",
                   parameters=[_param("force", "disconnect its containers first", OpenApiTypes.BOOL), IDEMPOTENCY],
                   request=None, responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    def destroy(self, request: Request, pk=None) -> Response:
        net = _object_for_action(Network, pk, request, "network.remove")
        job = services_networks.remove_network(request.user, net, force=request.query_params.get("force", ""),
                                               request=request, idempotency_key=_idempotency_key(request))
        return _job_response(job, request)

    def _pair(self, request: Request, pk, kind: str) -> tuple[Network, Container, dict]:
        net = _object_for_action(Network, pk, request, kind)
        body = _valid(ConnectSerializer, request)
        container = _object_for_action(Container, body["container"], request, kind)
        return net, container, body

    @extend_schema(summary="Connect a container (job network.connect)", request=ConnectSerializer,
                   responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def connect(self, request: Request, pk=None) -> Response:
        net, container, body = self._pair(request, pk, "network.connect")
        job = services_networks.connect(request.user, net, container, aliases=body.get("aliases"), request=request)
        return _job_response(job, request)

    @extend_schema(summary="Disconnect a container (job network.disconnect)", request=ConnectSerializer,
                   responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def disconnect(self, request: Request, pk=None) -> Response:
        net, container, _ = self._pair(request, pk, "network.disconnect")
        job = services_networks.disconnect(request.user, net, container, request=request)
        return _job_response(job, request)
