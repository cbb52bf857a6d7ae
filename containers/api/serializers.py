"""What the API returns (model serializers) and accepts (request serializers; services do the deep checks)."""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workers.engine.containers.spec import field_doc

from .. import permissions
from ..join import MAX_LABELS
from ..models import ApiToken, AuditEvent, Container, Host, Image, Job, Team, TeamMembership


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable snake_case code, e.g. name_taken, not_found, forbidden")
    message = serializers.CharField(help_text="readable message")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="offending fields and their messages (validation errors)")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- request bodies --------------------------------------------------------------------------------------
# JSON bodies must carry the documented types (no "5" for 5, no 0 for "0"); form bodies are text by nature
# and keep DRF's usual parsing. An empty form value of a nullable number means null.

REF_PATTERN = (r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
               r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
               r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
ref_validator = RegexValidator(REF_PATTERN, "invalid image reference: use name[:tag] (lowercase letters, digits, "
                                            "'.', '_', '-', '/'; a tag of letters, digits, '_', '.', '-')")


def _form(field: serializers.Field) -> bool:
    return isinstance(getattr(field.root, "initial_data", None), QueryDict)


class Str(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        return super().to_internal_value(data)


class Int(serializers.IntegerField):
    def to_internal_value(self, data):
        if _form(self):
            if data in ("", "null") and self.allow_null:
                return None
        elif isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("must be a whole number")
        return super().to_internal_value(data)


class Float(serializers.FloatField):
    def to_internal_value(self, data):
        if not _form(self) and (isinstance(data, bool) or not isinstance(data, (int, float))):
            raise serializers.ValidationError("must be a number")
        return super().to_internal_value(data)


class Bool(serializers.BooleanField):
    def to_internal_value(self, data):
        if not _form(self) and not isinstance(data, bool):
            raise serializers.ValidationError("must be true or false")
        return super().to_internal_value(data)



class HostSerializer(serializers.ModelSerializer):
    online = serializers.BooleanField(read_only=True)
    offline_reason = serializers.SerializerMethodField(
        help_text='null while online; else e.g. "host b is offline since 2026-12-04 12:31:05 UTC"')
    offline_job_timeout = serializers.IntegerField(
        read_only=True, allow_null=True,
        help_text="seconds a job queued for this host waits while it is offline before it fails (null: the "
                  "BERTH_OFFLINE_JOB_TIMEOUT setting; 0: until it is back)")

    class Meta:
        model = Host
        fields = ["id", "name", "online", "offline_reason", "last_heartbeat", "kernel", "cgroup_version", "cpus",
                  "memory_bytes", "runtimes", "facts", "created", "offline_job_timeout"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_offline_reason(self, host: Host) -> str | None:
        from ..offline import reason

        return None if host.online else reason(host)


class ImageSerializer(serializers.ModelSerializer):
    ref = serializers.CharField(read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Image
        fields = ["id", "name", "tag", "ref", "digest", "size", "layers", "config", "host", "host_name",
                  "owner", "owner_id", "team", "shared", "created"]


class PlacementHostSerializer(serializers.Serializer):
    host = serializers.CharField(help_text="host name")
    chosen = serializers.BooleanField(help_text="this host was picked")
    load = serializers.FloatField(allow_null=True, help_text="running containers per CPU; null: the host was out")
    reason = serializers.CharField(help_text="why it was out (offline, cordoned, lacks label …, no image …), "
                                             "else its load as 'N running on C CPU(s)'")


class PlacementSerializer(serializers.Serializer):
    host = serializers.CharField(help_text="the host Berth picked")
    reason = serializers.CharField(help_text="e.g. 'least loaded of 3 matching hosts (0.5 running per CPU)'")
    labels = serializers.ListField(child=serializers.CharField(), help_text="the labels asked for")
    considered = PlacementHostSerializer(many=True, help_text="every host, by name")


class ContainerSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)
    placement = PlacementSerializer(read_only=True, allow_null=True,
                                    help_text="why Berth chose the host when none was given; null: it was named")
    state = serializers.ChoiceField(source="shown_state", read_only=True,
                                    choices=[*Container.State.values, "unknown"],
                                    help_text="unknown while its host is offline (see last_known_state)")
    last_known_state = serializers.ChoiceField(source="state", read_only=True, choices=Container.State.values,
                                               help_text="the last state its host reported")

    class Meta:
        model = Container
        fields = ["id", "engine_id", "name", "image", "image_ref", "host", "host_name", "owner", "owner_id",
                  "team", "command", "config", "state", "last_known_state", "exit_code", "oom_killed", "labels", "restart_policy",
                  "restart_count", "status_message", "created", "started", "finished", "network", "placement"]
        extra_kwargs = {"network": {"help_text": "the host's view: mode, networks (ip, mac, gateway, aliases), "
                                                 "ports (host_ip, host_port, container_port, protocol)"}}


class JobSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True,
                                         default=None)
    download_url = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField(
        help_text='progress text; a job queued for an offline host says why it waits ("waiting: host X is offline '
                  'since …")')

    class Meta:
        model = Job
        fields = ["id", "kind", "state", "progress", "message", "error", "error_code", "error_field",
                  "error_detail", "result", "params", "attempts", "target_type", "target_id", "host", "host_name",
                  "requested_by", "created", "started", "finished", "download_url"]

    error_detail = serializers.SerializerMethodField(
        help_text="a failed job's error as the API's errors are: code, message and the field it is about")

    @extend_schema_field(ErrorDetailSerializer(allow_null=True))
    def get_error_detail(self, job: Job) -> dict | None:
        from .errors import error_body

        if job.state != Job.State.FAILED or not job.error:
            return None
        field = job.error_field
        return error_body(job.error_code or "job_failed", job.error, {field: [job.error]} if field else None)["error"]

    @extend_schema_field(serializers.CharField())
    def get_message(self, job: Job) -> str:
        from ..offline import job_message

        return job_message(job)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, job: Job) -> str | None:
        expired = isinstance(job.result, dict) and job.result.get("expired")
        if job.kind in ("container.export", "image.save", "container.logs") and job.state == Job.State.SUCCEEDED \
                and not expired:
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
    name = Str(max_length=150, validators=[RegexValidator(r"\S", "a team needs a name")])


class MemberAddSerializer(serializers.Serializer):
    username = Str(max_length=150)
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices, default="viewer")


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


# Not blank, no NUL: in the schema too, so that what it calls valid the server accepts. Whitespace is
# trimmed after the length check, as the schema's maxLength counts it.
TOKEN_NAME_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"


class TokenCreateSerializer(serializers.Serializer):
    name = Str(max_length=100, trim_whitespace=False, validators=[
        RegexValidator(TOKEN_NAME_PATTERN, "a token needs a name (not only spaces, no NUL characters)")])

    def validate_name(self, value: str) -> str:
        return value.strip()


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "created", "actor", "actor_name", "action", "target_type", "target_id", "target_repr",
                  "team", "address", "via", "result", "status_code", "detail"]


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
                      "description": "bytes, or a size with unit like 64m, 1g"})
class SizeField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError("give bytes (a whole number) or a size like 64m")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]})
class IdOrNameField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)) or data == "":
            raise serializers.ValidationError("give an id or a name")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}],
                      "description": "host id or name; empty: chosen for you"})
class HostField(IdOrNameField):
    def to_internal_value(self, data):
        if data == "":
            return None
        return super().to_internal_value(data)


# A host label as placement asks for it: key or key=value (containers/join.py's grammar for host labels).
PLACEMENT_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}(?:=[A-Za-z0-9._-]{0,63})?$"


@extend_schema_field({"type": "string", "pattern": PLACEMENT_LABEL_PATTERN})
class PlacementLabel(Str):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not re.fullmatch(PLACEMENT_LABEL_PATTERN, value):  # fullmatch: no trailing newline slips past "$"
            raise serializers.ValidationError("a label is key or key=value (letters, digits, '.', '_', '-'; keys "
                                              "also '/'; at most 63 each)")
        return value


class ContainerPlacementSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=PlacementLabel(),
        required=False, max_length=MAX_LABELS, help_text="every one must match the host's labels: a bare key needs "
                                                         "the key, key=value that value")


class ContainerCreateSerializer(serializers.Serializer):
    image = IdOrNameField(help_text="image id, or name[:tag] on the chosen host")
    host = HostField(required=False, allow_null=True, help_text="host id or name (default: Berth places it on the "
                                                                "least loaded online, uncordoned host that has the "
                                                                "image and matches placement.labels)")
    placement = ContainerPlacementSerializer(required=False, allow_null=True,
                                           help_text="only without a host: what the chosen host must match")
    name = Str(required=False, allow_blank=True, max_length=128, default="",
               validators=[RegexValidator(r"^(?:[a-zA-Z0-9][a-zA-Z0-9_.-]*)?$",
                                          "use letters, digits, '_', '.', '-' (starting with a letter or digit)")])
    command = serializers.ListField(child=Str(allow_blank=True), required=False, allow_null=True)
    entrypoint = serializers.ListField(child=Str(allow_blank=True), required=False,
                                       allow_null=True)
    env = serializers.DictField(child=Str(allow_blank=True), required=False, allow_null=True)
    workdir = Str(required=False, allow_blank=True, default="")
    user = Str(required=False, allow_blank=True, default="")
    hostname = Str(required=False, allow_blank=True, default="")
    memory = SizeField(required=False, allow_null=True)
    cpus = Float(required=False, allow_null=True)
    pids_limit = Int(required=False, allow_null=True)
    disk = SizeField(required=False, allow_null=True, help_text="most bytes the container may write, e.g. 10g")
    restart_policy = Str(required=False, default="no",
                         validators=[RegexValidator(r"^(?:no|always|unless-stopped|on-failure(?::[0-9]+)?)$",
                                                    "use no, always, unless-stopped or on-failure[:N]")],
                                           help_text="no, always, unless-stopped or on-failure[:N]")
    labels = serializers.DictField(child=Str(allow_blank=True), required=False, allow_null=True)
    mounts = serializers.ListField(child=Str(), required=False, allow_null=True,
                                   help_text="'volume:/dst[:ro]' or (superusers) '/host/path:/dst[:ro]'")
    read_only = Bool(required=False, default=False)
    tty = Bool(required=False, default=False)
    # Declared in the container spec for what comes next: refused (code not_supported) until the engine applies
    # them, so a client never believes they were applied.
    ports = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("ports"))
    networks = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("networks"))
    network_aliases = serializers.ListField(child=Str(), required=False, allow_null=True,
                                            help_text=field_doc("network_aliases"))
    dns = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("dns"))
    dns_search = serializers.ListField(child=Str(), required=False, allow_null=True,
                                       help_text=field_doc("dns_search"))
    extra_hosts = serializers.ListField(child=Str(), required=False, allow_null=True,
                                        help_text=field_doc("extra_hosts"))
    cap_add = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("cap_add"))
    cap_drop = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("cap_drop"))
    devices = serializers.ListField(child=Str(), required=False, allow_null=True, help_text=field_doc("devices"))
    sysctls = serializers.DictField(child=Str(allow_blank=True), required=False, allow_null=True,
                                    help_text=field_doc("sysctls"))
    ulimits = serializers.DictField(child=Str(), required=False, allow_null=True, help_text=field_doc("ulimits"))
    init = Bool(required=False, help_text=field_doc("init"))
    stop_signal = Str(required=False, allow_null=True, help_text=field_doc("stop_signal"))
    stop_timeout = Int(required=False, allow_null=True, help_text=field_doc("stop_timeout"))
    healthcheck = serializers.DictField(required=False, allow_null=True, help_text=field_doc("healthcheck"))
    start = Bool(required=False, default=True, help_text="start it once created")
    team = Int(required=False, allow_null=True, help_text="team id the container belongs to")


class StopSerializer(serializers.Serializer):
    timeout = Int(required=False, min_value=0, max_value=3600, default=10,
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
    force = Bool(required=False, default=False, help_text="remove even if running")


class CommitSerializer(serializers.Serializer):
    ref = Str(help_text="name[:tag] of the new image", validators=[ref_validator], max_length=400)
    author = Str(required=False, allow_blank=True, default="")
    message = Str(required=False, allow_blank=True, default="")
    changes = serializers.ListField(child=Str(), required=False, default=list)
    team_id = Int(required=False, allow_null=True)
    shared = Bool(required=False, default=False)


class SaveSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["docker-archive", "oci-archive"], required=False,
                                     default="docker-archive")


class TagSerializer(serializers.Serializer):
    ref = Str(help_text="new name[:tag]", validators=[ref_validator], max_length=400)


class ShareSerializer(serializers.Serializer):
    team = Int(required=False, allow_null=True, help_text="team id, or null for none")
    shared = Bool(required=False, default=False, help_text="usable by every user")


class ImportFormSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="root filesystem tarball (tar, tar.gz or tar.zst)")
    ref = Str(help_text="name[:tag] of the new image", validators=[ref_validator], max_length=400)
    host = HostField(required=False, allow_null=True)
    team = Int(required=False, allow_null=True)
    shared = Bool(required=False, default=False)
    message = Str(required=False, allow_blank=True, default="")


class LoadFormSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="docker-archive or oci-archive (docker save / podman save)")
    host = HostField(required=False, allow_null=True)
    team = Int(required=False, allow_null=True)
    shared = Bool(required=False, default=False)


BINARY = OpenApiTypes.BINARY
