"""What the API returns (model serializers) and accepts (request serializers; services do the deep checks)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import permissions
from ..models import ApiToken, AuditEvent, Container, Host, Image, Job, Team, TeamMembership


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable snake_case code, e.g. name_taken, not_found, forbidden")
    message = serializers.CharField(help_text="readable message")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="offending fields and their messages (validation errors)")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class HostSerializer(serializers.ModelSerializer):
    online = serializers.BooleanField(read_only=True)

    class Meta:
        model = Host
        fields = ["id", "name", "online", "last_heartbeat", "kernel", "cgroup_version", "cpus", "memory_bytes",
                  "runtimes", "facts", "created"]


class ImageSerializer(serializers.ModelSerializer):
    ref = serializers.CharField(read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Image
        fields = ["id", "name", "tag", "ref", "digest", "size", "layers", "config", "host", "host_name",
                  "owner", "owner_id", "team", "shared", "created"]


class ContainerSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Container
        fields = ["id", "engine_id", "name", "image", "image_ref", "host", "host_name", "owner", "owner_id",
                  "team", "command", "config", "state", "exit_code", "oom_killed", "labels", "restart_policy",
                  "restart_count", "status_message", "created", "started", "finished"]


class JobSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True,
                                         default=None)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "state", "progress", "message", "error", "result", "params", "attempts",
                  "target_type", "target_id", "host", "host_name", "requested_by", "created", "started",
                  "finished", "download_url"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, job: Job) -> str | None:
        if job.kind in ("container.export", "image.save", "container.logs") and job.state == Job.State.SUCCEEDED:
            return f"/api/v1/jobs/{job.pk}/download"
        return None


class ContainerCreatedSerializer(serializers.Serializer):
    container = ContainerSerializer()
    job = JobSerializer()


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = TeamMembership
        fields = ["user_id", "username", "role"]


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="your role in this team (null for superusers outside it)")

    class Meta:
        model = Team
        fields = ["id", "name", "created", "role"]

    @extend_schema_field(serializers.ChoiceField(choices=TeamMembership.Role.choices, allow_null=True))
    def get_role(self, team: Team) -> str | None:
        return permissions.role_in(self.context["request"].user, team.pk)


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("a team needs a name")
        if Team.objects.filter(name=value).exists():
            raise serializers.ValidationError(f"a team named {value} exists already")
        return value


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices, default="viewer")

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"no user named {value}")
        return user


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices)


class TokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used", "revoked", "active"]


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the token itself: shown this once only")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("a token needs a name")
        return value


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created", "actor", "actor_name", "action", "target_type", "target_id", "target_repr",
                  "team", "address", "via", "result", "status_code", "detail"]


# --- request bodies --------------------------------------------------------------------------------------

@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
                      "description": "bytes, or a size with unit like 64m, 1g"})
class SizeField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError("give bytes (a whole number) or a size like 64m")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class IdOrNameField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)) or data == "":
            raise serializers.ValidationError("give an id or a name")
        return data

    def to_representation(self, value):
        return value


class ContainerCreateSerializer(serializers.Serializer):
    image = IdOrNameField(help_text="image id, or name[:tag] on the chosen host")
    host = IdOrNameField(required=False, help_text="host id or name (default: the image's host, or the least "
                                                   "loaded online host)")
    name = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    command = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    entrypoint = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False,
                                       allow_null=True)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    workdir = serializers.CharField(required=False, allow_blank=True, default="")
    user = serializers.CharField(required=False, allow_blank=True, default="")
    hostname = serializers.CharField(required=False, allow_blank=True, default="")
    memory = SizeField(required=False, allow_null=True)
    cpus = serializers.FloatField(required=False, allow_null=True)
    pids_limit = serializers.IntegerField(required=False, allow_null=True)
    restart_policy = serializers.CharField(required=False, default="no",
                                           help_text="no, always, unless-stopped or on-failure[:N]")
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    mounts = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True,
                                   help_text="'volume:/dst[:ro]' or (superusers) '/host/path:/dst[:ro]'")
    read_only = serializers.BooleanField(required=False, default=False)
    tty = serializers.BooleanField(required=False, default=False)
    start = serializers.BooleanField(required=False, default=True, help_text="start it once created")
    team = serializers.IntegerField(required=False, allow_null=True, help_text="team id the container belongs to")


class StopSerializer(serializers.Serializer):
    timeout = serializers.IntegerField(required=False, min_value=0, max_value=3600, default=10,
                                       help_text="seconds between SIGTERM and SIGKILL")


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 1, "maximum": 64}],
                      "description": "SIGKILL, TERM, 9 …"})
class SignalField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError("a signal name like SIGTERM or a number")
        return data

    def to_representation(self, value):
        return value


class KillSerializer(serializers.Serializer):
    signal = SignalField(required=False, default="SIGKILL")


class RemoveSerializer(serializers.Serializer):
    force = serializers.BooleanField(required=False, default=False, help_text="remove even if running")


class CommitSerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="name[:tag] of the new image")
    author = serializers.CharField(required=False, allow_blank=True, default="")
    message = serializers.CharField(required=False, allow_blank=True, default="")
    changes = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    team_id = serializers.IntegerField(required=False, allow_null=True)
    shared = serializers.BooleanField(required=False, default=False)


class SaveSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["docker-archive", "oci-archive"], required=False,
                                     default="docker-archive")


class TagSerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="new name[:tag]")


class ShareSerializer(serializers.Serializer):
    team = serializers.IntegerField(required=False, allow_null=True, help_text="team id, or null for none")
    shared = serializers.BooleanField(required=False, default=False, help_text="usable by every user")


class ImportFormSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="root filesystem tarball (tar, tar.gz or tar.zst)")
    ref = serializers.CharField(help_text="name[:tag] of the new image")
    host = IdOrNameField(required=False)
    team = serializers.IntegerField(required=False, allow_null=True)
    shared = serializers.BooleanField(required=False, default=False)
    message = serializers.CharField(required=False, allow_blank=True, default="")


class LoadFormSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="docker-archive or oci-archive (docker save / podman save)")
    host = IdOrNameField(required=False)
    team = serializers.IntegerField(required=False, allow_null=True)
    shared = serializers.BooleanField(required=False, default=False)


BINARY = OpenApiTypes.BINARY
