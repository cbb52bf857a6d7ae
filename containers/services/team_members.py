"""Team services: make a team (superusers), add members, change their roles, remove them (team admins).

The dashboard's Teams pages call these; each checks permission (a team you cannot see is "no such team",
404; one you see without the admin role is 403), validates with the field named, and audits refusals too.
A team always keeps at least one admin."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from .. import audit, bounds
from ..models import Team, TeamMembership
from .common import ServiceError, _authorize, _refuse

ROLES = tuple(TeamMembership.Role.values)
TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _signed_in(request, user, action: str, target) -> None:
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, action, target, ServiceError("not_authenticated", "sign in first", status=401))


def create_team(user, name: str, *, request=None) -> Team:
    """A new team (superusers only), with its creator as its first admin."""
    action = "team.create"
    name = str(name or "").strip()
    try:
        _signed_in(request, user, action, ("team", "", name[:100]))
        if not user.is_superuser:
            raise ServiceError("forbidden", "only superusers create teams")
        if not TEAM_NAME.match(name):
            raise ServiceError("invalid", "a team name is 1-64 letters, digits, '_', '.' or '-', starting with a "
                                          "letter or digit", field="name")
        if Team.objects.filter(name=name).exists():
            raise ServiceError("conflict", f"a team named {name} exists already", field="name")
        with transaction.atomic():
            team = Team.objects.create(name=name)
            TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.ADMIN)
    except ServiceError as exc:
        raise _refuse(request, user, action, ("team", "", name[:100]), exc) from None
    except IntegrityError:
        raise _refuse(request, user, action, ("team", "", name[:100]),
                      ServiceError("conflict", f"a team named {name} exists already", field="name")) from None
    audit.record(request, user, action, team, "ok", status_code=201)
    return team


def _role(value, action: str, request, user, team) -> str:
    role = str(value or "").strip().lower()
    if role not in ROLES:
        raise _refuse(request, user, action, team,
                      ServiceError("invalid", f"role must be one of {', '.join(ROLES)}", field="role"))
    return role


def add_member(user, team: Team, username: str, role: str, *, request=None) -> TeamMembership:
    action = "team.member.add"
    _authorize(request, user, "team.manage", team, audit_action=action)
    role = _role(role, action, request, user, team)
    username = str(username or "").strip()
    try:
        member = get_user_model().objects.filter(username=username).first() if username else None
        if member is None:
            raise ServiceError("invalid", f"no user named {username[:150]!r}" if username else "give a user name",
                               field="username")
        if TeamMembership.objects.filter(team=team, user=member).exists():
            raise ServiceError("conflict", f"{member.username} is a member already", field="username")
        row = TeamMembership.objects.create(team=team, user=member, role=role)
    except ServiceError as exc:
        raise _refuse(request, user, action, team, exc) from None
    except IntegrityError:
        raise _refuse(request, user, action, team,
                      ServiceError("conflict", f"{username} is a member already", field="username")) from None
    audit.record(request, user, action, team, "ok", {"user": member.username, "role": role}, status_code=201)
    return row


def _membership(request, user, team: Team, member_id, action: str) -> TeamMembership:
    pk = bounds.as_id(member_id, get_user_model())
    row = TeamMembership.objects.filter(team=team, user_id=pk).select_related("user").first() if pk else None
    if row is None:
        raise _refuse(request, user, action, team, ServiceError("not_found", "no such member"))
    return row


def _keeps_an_admin(request, user, team: Team, row: TeamMembership, new_role: str | None, action: str) -> None:
    if row.role == TeamMembership.Role.ADMIN and new_role != TeamMembership.Role.ADMIN:
        if not TeamMembership.objects.filter(team=team, role=TeamMembership.Role.ADMIN).exclude(pk=row.pk).exists():
            raise _refuse(request, user, action, team,
                          ServiceError("conflict", "a team keeps at least one admin: make another member admin "
                                                   "first", field="role"))


def set_role(user, team: Team, member_id, role: str, *, request=None) -> TeamMembership:
    action = "team.member.role"
    _authorize(request, user, "team.manage", team, audit_action=action)
    role = _role(role, action, request, user, team)
    row = _membership(request, user, team, member_id, action)
    _keeps_an_admin(request, user, team, row, role, action)
    before = row.role
    row.role = role
    row.save(update_fields=["role"])
    audit.record(request, user, action, team, "ok", {"user": row.user.username, "before": before, "after": role},
                 status_code=200)
    return row


def remove_member(user, team: Team, member_id, *, request=None) -> None:
    action = "team.member.remove"
    _authorize(request, user, "team.manage", team, audit_action=action)
    row = _membership(request, user, team, member_id, action)
    _keeps_an_admin(request, user, team, row, None, action)
    row.delete()
    audit.record(request, user, action, team, "ok", {"user": row.user.username}, status_code=204)
