"""/api/v1/volumes: named volumes. Reads come from permissions.visible_volumes (own and team volumes only);
create and delete go through containers/services/volumes.py and answer 202 with the Job."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from workers.engine.containers.config import VOLUME_RE

from .. import selectors
from ..models import Volume
from ..services import volumes as services_volumes
from . import serializers as s
from .common import ThrottleFirst, _idempotency_key, _job_response, _object_for_action, _valid, pick_host
from .schema import IDEMPOTENCY, PAGE, SEARCH, _param, errors, ordering_param

ORDERING = ["name", "created"]


class VolumeSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)
    containers = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                    help_text="ids of the containers that mount it")

    class Meta:
        model = Volume
        fields = ["id", "engine_id", "name", "host", "host_name", "owner", "owner_id", "team", "labels", "size",
                  "state", "containers", "created"]


class VolumeCreateSerializer(serializers.Serializer):
    name = s.Str(max_length=services_volumes.NAME_MAX,
                 validators=[RegexValidator(VOLUME_RE,
                                            "use letters, digits, '_', '.', '-' (starting with a letter or digit)")],
                 help_text="unique in your name space (or the team's) on the host")
    host = s.HostField(required=False, allow_null=True, help_text="host id or name (default: the least loaded "
                                                                  "online host)")
    team = s.Int(required=False, allow_null=True, help_text="team id the volume belongs to (its name space)")
    labels = serializers.DictField(child=s.Str(allow_blank=True), required=False, allow_null=True)
    size = s.Str(required=False, allow_null=True, allow_blank=True, max_length=32,
                 help_text="most bytes it may hold, e.g. 10g (default and maximum: your team's limits)")


class VolumeCreatedSerializer(serializers.Serializer):
    volume = VolumeSerializer()
    job = s.JobSerializer()


FILTERS = [_param("host", "host id or name"), _param("owner", "owner id or username"),
           _param("team", "team id or name"), _param("name", "exact volume name"),
           _param("label", "key or key=value (repeat for several; all must match)", many=True), SEARCH,
           ordering_param(ORDERING), *PAGE]


@extend_schema_view(
    list=extend_schema(summary="List volumes (yours and your teams')", parameters=FILTERS,
                       responses={200: VolumeSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="A volume", responses={200: VolumeSerializer, **errors(404)}),
)
class VolumeViewSet(ThrottleFirst, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = VolumeSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in JSON
    parser_classes = [JSONParser]

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else None
        return selectors.volumes(self.request.user, params)

    @extend_schema(summary="Create a volume (job volume.create)", request=VolumeCreateSerializer,
                   parameters=[IDEMPOTENCY], responses={202: VolumeCreatedSerializer, **errors(400, 403, 404, 409)})
    def create(self, request: Request) -> Response:
        body = _valid(VolumeCreateSerializer, request)
        host = pick_host(request.user, body.get("host"), None)
        volume, job = services_volumes.create_volume(
            request.user, host=host, name=body["name"], team=body.get("team"), labels=body.get("labels"), size=body.get("size"),
            request=request, idempotency_key=_idempotency_key(request))
        context = {"request": request}
        data = {"volume": VolumeSerializer(volume, context=context).data if volume is not None else None,
                "job": s.JobSerializer(job, context=context).data}
        headers = {"Location": f"/api/v1/volumes/{volume.pk}"} if volume is not None else {}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(summary="Remove a volume and its data (job volume.remove; refused while a container uses it)",
                   parameters=[_param("force", "also while the containers that used it are being removed",
                                      OpenApiTypes.BOOL), IDEMPOTENCY],
                   request=None, responses={202: s.JobSerializer, **errors(400, 403, 404, 409)})
    def destroy(self, request: Request, pk=None) -> Response:
        volume = _object_for_action(Volume, pk, request, "volume.remove")
        job = services_volumes.remove_volume(request.user, volume, force=request.query_params.get("force", ""),
                                             request=request, idempotency_key=_idempotency_key(request))
        return _job_response(job, request)
