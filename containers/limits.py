"""Container limits: system defaults and maxima (settings.BERTH_LIMITS), overridden per team by an admin
(TeamLimits). A create without a limit gets the default; one above the maximum is refused at its field.
Personal containers (no team) use the system values. Everybody, superusers included, stays under the
maxima of the team they create in: a superuser raises the team's maxima instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from .models import Team, TeamLimits

FIELDS = ("default_pids_limit", "max_pids_limit", "default_memory", "max_memory", "default_cpus", "max_cpus",
          "default_disk", "max_disk", "default_volume_size", "max_volume_size", "max_expanded_upload")


class LimitError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Effective values; None means "no default" / "no maximum"."""

    default_pids_limit: int | None
    max_pids_limit: int | None
    default_memory: int | None
    max_memory: int | None
    default_cpus: float | None
    max_cpus: float | None
    default_disk: int | None
    max_disk: int | None
    default_volume_size: int | None
    max_volume_size: int | None
    max_expanded_upload: int | None
    scope: str = "this system"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "scope"}


def system() -> Limits:
    raw = dict(getattr(settings, "BERTH_LIMITS", {}) or {})
    return Limits(**{f: (raw.get(f) or None) for f in FIELDS})


def for_team(team: Team | None) -> Limits:
    """The team's limits: its TeamLimits fields where set, the system values elsewhere."""
    base = system()
    if team is None:
        return base
    row = TeamLimits.objects.filter(team=team).first()
    values = base.as_dict()
    if row is not None:
        for f in FIELDS:
            value = getattr(row, f)
            if value is not None:
                values[f] = value or None  # 0 set by an admin: none
    return Limits(**values, scope=f"team {team.name}")


def _size(n: float) -> str:
    from workers.engine.containers.config import human_size

    return human_size(int(n))


def _pick(value: Any, default: Any, maximum: Any, field: str, scope: str, show=str) -> Any:
    if value is None:
        if default is None:
            return None
        return min(default, maximum) if maximum is not None else default
    if maximum is not None and value > maximum:
        raise LimitError(field, f"{field} {show(value)} is above the maximum of {show(maximum)} for {scope}")
    return value


def container_values(limits: Limits, *, memory: int | None, cpus: float | None, pids_limit: int | None,
                     disk: int | None) -> dict[str, Any]:
    """memory/cpus/pids_limit/disk with defaults filled in; LimitError names a field over its maximum."""
    return {
        "pids_limit": _pick(pids_limit, limits.default_pids_limit, limits.max_pids_limit, "pids_limit",
                            limits.scope),
        "memory": _pick(memory, limits.default_memory, limits.max_memory, "memory", limits.scope, _size),
        "cpus": _pick(cpus, limits.default_cpus, limits.max_cpus, "cpus", limits.scope, lambda v: f"{v:g}"),
        "disk": _pick(disk, limits.default_disk, limits.max_disk, "disk", limits.scope, _size),
    }


def volume_size(limits: Limits, size: int | None) -> int | None:
    """A new volume's size limit (for the volumes service): the default, or refused above the maximum."""
    return _pick(size, limits.default_volume_size, limits.max_volume_size, "size", limits.scope, _size)
