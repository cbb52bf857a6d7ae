"""The audit trail: one AuditEvent per attempted action (who, what, on which object, from where, result).

Denied and invalid attempts are recorded too. Recording never raises into the caller's action:
a failed write is logged, not turned into a failed user request.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction

from .models import AuditEvent, Container, Image, Job, Team, Volume

log = logging.getLogger(__name__)

RESULTS = ("ok", "denied", "invalid", "failed")


def client_address(request) -> str | None:
    """The peer address of an HTTP request or a Channels scope (REMOTE_ADDR; proxies are not trusted)."""
    if request is None:
        return None
    if isinstance(request, dict):  # an ASGI scope
        client = request.get("client") or (None,)
        value = client[0] if client else None
    else:
        value = getattr(request, "META", {}).get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def channel_of(request) -> str:
    """ "api", "dashboard" or "websocket", from where the request came in ("" without a request)."""
    if request is None:
        return ""
    if isinstance(request, dict):
        return "websocket"
    path = getattr(request, "path", "") or ""
    return "api" if path.startswith("/api/") else "dashboard"


def _job_team(job: Job) -> int | None:
    """A job's events belong to the team of the container or image it acts on."""
    model = {"container": Container, "image": Image, "volume": Volume}.get(job.target_type)
    if model is None or not job.target_id.isdigit():
        return None
    return model.objects.filter(pk=job.target_id).values_list("team_id", flat=True).first()


def _target_fields(target: Any) -> tuple[str, str, str, int | None]:
    """(type, id, readable, team id) of a model instance or a ("type", id[, repr]) tuple."""
    if target is None:
        return "", "", "", None
    if isinstance(target, tuple):
        kind, ident, *rest = target
        return str(kind), str(ident), str(rest[0]) if rest else "", None
    kind = target._meta.model_name
    if isinstance(target, Team):
        team_id = target.pk
    elif isinstance(target, Job):
        team_id = _job_team(target)
    else:
        team_id = getattr(target, "team_id", None)
    return kind, str(target.pk or ""), str(target), team_id


def _visible_to(user, target: Any) -> bool:
    """Whether `user` may see the model instance `target` (tuples carry only what the caller gave)."""
    if target is None or isinstance(target, tuple):
        return True
    from .permissions import can

    try:
        return can(user, "view", target)
    except Exception:
        return False


def record(
    request,
    user,
    action: str,
    target: Any = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
    via: str | None = None,
    *,
    status_code: int | None = None,
    team: Team | int | None = None,
) -> AuditEvent | None:
    """Write one audit event. `target`: a model instance or ("type", id[, repr]); `team` overrides the
    team derived from the target (the team whose admins may read the event)."""
    if result not in RESULTS:
        raise ValueError(f"audit result must be one of {RESULTS}, not {result!r}")
    target_type, target_id, target_repr, team_id = _target_fields(target)
    if team is not None:
        team_id = team.pk if isinstance(team, Team) else int(team)
    if result != "ok" and not _visible_to(user, target):
        # A refused attempt on an object the actor cannot see is kept by id only: its name and team would
        # tell the actor (who reads their own events) what they poked at.
        target_repr, team_id = "", None
    actor = user if user is not None and getattr(user, "is_authenticated", False) else None
    try:
        # Its own savepoint: a failed audit write must not break the caller's transaction.
        with transaction.atomic():
            return AuditEvent.objects.create(
                actor=actor,
                actor_name=(actor.get_username() if actor else "")[:150],
                action=action[:100],
                target_type=target_type[:50],
                target_id=target_id[:100],
                target_repr=target_repr[:300],
                team_id=team_id,
                address=client_address(request),
                via=(via if via is not None else channel_of(request))[:16],
                result=result,
                status_code=status_code,
                detail=detail or {},
            )
    except Exception:
        log.exception("could not record audit event %s %s:%s %s", action, target_type, target_id, result)
        return None


# Sign-ins and sign-outs of the dashboard are actions too (connected when this module is imported,
# which the URLconf does before any request is handled).
def _logged_in(sender, request, user, **kwargs) -> None:
    record(request, user, "auth.login", ("user", user.pk, user.get_username()), "ok")


def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        record(request, user, "auth.logout", ("user", user.pk, user.get_username()), "ok")


def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    name = str((credentials or {}).get("username", ""))[:150]
    record(request, None, "auth.login", ("user", "", name), "denied", {"username": name})


user_logged_in.connect(_logged_in, dispatch_uid="berth-audit-login")
user_logged_out.connect(_logged_out, dispatch_uid="berth-audit-logout")
user_login_failed.connect(_login_failed, dispatch_uid="berth-audit-login-failed")
