"""GET/PUT/PATCH /api/v1/teams/{id}/limits: a team's container limits (changes: superusers only)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .. import limits
from ..models import Team, TeamLimits
from .serializers import Float, Int

BIG = 1 << 62  # bytes and counts stay well inside a signed 64-bit column


class TeamLimitsSerializer(serializers.Serializer):
    """Each field: null takes the system value, 0 means none (no default / no maximum)."""

    default_pids_limit = Int(required=False, allow_null=True, min_value=0, max_value=4194304)
    max_pids_limit = Int(required=False, allow_null=True, min_value=0, max_value=4194304)
    default_memory = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    max_memory = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    default_cpus = Float(required=False, allow_null=True, min_value=0, max_value=4096)
    max_cpus = Float(required=False, allow_null=True, min_value=0, max_value=4096)
    default_disk = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    max_disk = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    default_volume_size = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    max_volume_size = Int(required=False, allow_null=True, min_value=0, max_value=BIG)
    max_expanded_upload = Int(required=False, allow_null=True, min_value=0, max_value=BIG)


class TeamLimitsPayloadSerializer(serializers.Serializer):
    team = serializers.IntegerField()
    overrides = TeamLimitsSerializer(help_text="what an admin set for this team (null: the system value)")
    effective = TeamLimitsSerializer(help_text="what a create in this team gets (null: none)")


def payload(team: Team) -> dict[str, Any]:
    row = TeamLimits.objects.filter(team=team).first()
    return {"team": team.pk,
            "overrides": {f: getattr(row, f) if row else None for f in limits.FIELDS},
            "effective": limits.for_team(team).as_dict()}
