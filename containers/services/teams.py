"""Team services: a team's container limits (superusers)."""

from __future__ import annotations

from typing import Any

from .. import audit
from .. import limits as team_limits
from ..models import Team
from .common import ServiceError, _refuse

# --- team limits --------------------------------------------------------------------------------------

def set_team_limits(user, team: Team, values: dict[str, Any], *, replace: bool = False, request=None):
    """Set `team`'s container limits (superusers only); None takes the system value, 0 means none.
    With `replace`, fields not given go back to the system value."""
    from ..models import TeamLimits

    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        if not user.is_superuser:
            raise ServiceError("forbidden", "only superusers change a team's limits")
        unknown = sorted(set(values) - set(team_limits.FIELDS))
        if unknown:
            raise ServiceError("invalid", f"unknown limit {unknown[0]!r}", field=unknown[0])
        row = TeamLimits.objects.filter(team=team).first() or TeamLimits(team=team)
        new = {f: (values.get(f) if replace else values.get(f, getattr(row, f))) for f in team_limits.FIELDS}
        for name in team_limits.FIELDS:
            if name.startswith("default_"):
                top = new.get("max_" + name[len("default_"):])
                if new[name] and top and new[name] > top:
                    raise ServiceError("invalid", f"{name} {new[name]:g} is above max_{name[8:]} {top:g}", field=name)
    except ServiceError as exc:
        raise _refuse(request, user, "team.limits", team, exc) from None
    before = {f: getattr(row, f) for f in team_limits.FIELDS}
    for name, value in new.items():
        setattr(row, name, value)
    row.save()
    audit.record(request, user, "team.limits", team, "ok", {"before": before, "after": new}, status_code=200)
    return row
