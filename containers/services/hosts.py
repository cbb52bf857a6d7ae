"""Actions on hosts. Hosts are shared by every tenant: anyone signed in sees them, only an operator
(superuser) asks one to do something, since a host's work is paid for by all its tenants: probe, labels,
cordon/uncordon/drain, and the join tokens new machines join with (issue 18)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from .. import audit, bounds, events, join
from ..models import Container, Host, Job, JoinToken
from .common import ServiceError, _as_host, _authorize, _existing, _refuse, _submit, scoped_key

# What a drain does and how its containers leave (issue 18).
DRAIN_NOTE = ("Drain cordons the host and lists what is still there: move each container off from its page (Move or "
              "copy to another host), or move them all to the least loaded online, uncordoned hosts with Drain and "
              "move containers on the Hosts page (the API: drain with move: true).")


def probe_host(user, host: Host | int | str, *, request=None, idempotency_key: str | None = None) -> Job:
    """Queue a host.probe job (re-read the host's facts and runtimes); refused with 403 for non-operators."""
    host = _as_host(host)
    _authorize(request, user, "host.probe", host)
    key = scoped_key(user, idempotency_key)
    existing = _existing(user, key, "host.probe", "host", str(host.pk))
    if existing is not None:
        return existing
    return _submit(request, user, "host.probe", host, host, {}, key)


def require_admin(request, user, action: str, target: Any, what: str) -> None:
    """Superusers only: others are refused (403; signed out: 401), audited."""
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, action, target, ServiceError("not_authenticated", "sign in first", status=401))
    if not user.is_superuser:
        raise _refuse(request, user, action, target, ServiceError("forbidden", f"only admins {what}"))


# --- labels, cordon, drain --------------------------------------------------------------------------------

_UNCHANGED = object()


def update_host(user, host: Host | int | str, *, labels: Any = None, cordoned: Any = None,
                offline_job_timeout: Any = _UNCHANGED, request=None) -> Host:
    """Set a host's labels (replaced as a whole), cordon it (True) or uncordon it (False; also ends a drain),
    and/or the seconds its queued jobs wait while it is offline (None: the setting's). Superusers only. One
    audit event per change."""
    host = _as_host(host)
    _authorize(request, user, "view", host, audit_action="host.update")
    require_admin(request, user, "host.update", host, "change hosts")
    if labels is not None:
        try:
            parsed = join.parse_labels(labels)
        except join.LabelError as exc:
            raise _refuse(request, user, "host.labels", host, ServiceError("invalid", str(exc), field="labels")) \
                from None
    if cordoned is not None and not isinstance(cordoned, bool):
        raise _refuse(request, user, "host.update", host,
                      ServiceError("invalid", "cordoned must be true or false", field="cordoned"))
    timeout_given = offline_job_timeout is not _UNCHANGED
    if timeout_given and offline_job_timeout is not None and (
            isinstance(offline_job_timeout, bool) or not isinstance(offline_job_timeout, int)
            or offline_job_timeout < 0):
        raise _refuse(request, user, "host.update", host, ServiceError(
            "invalid", "offline_job_timeout must be a number of seconds (0 or more) or null",
            field="offline_job_timeout"))
    if labels is not None:
        before = host.labels
        host.labels = parsed
        host.save(update_fields=["labels"])
        audit.record(request, user, "host.labels", host, "ok", {"labels": parsed, "before": before}, status_code=200)
    if cordoned is not None and (cordoned != host.cordoned or (not cordoned and host.draining)):
        host.cordoned = cordoned
        host.draining = host.draining and cordoned  # uncordoning ends a drain
        host.save(update_fields=["cordoned", "draining"])
        audit.record(request, user, "host.cordon" if cordoned else "host.uncordon", host, "ok", status_code=200)
    if timeout_given and offline_job_timeout != host.offline_job_timeout:
        before = host.offline_job_timeout
        host.offline_job_timeout = offline_job_timeout
        host.save(update_fields=["offline_job_timeout"])
        audit.record(request, user, "host.offline_job_timeout", host, "ok",
                     {"offline_job_timeout": offline_job_timeout, "before": before}, status_code=200)
    events.publish_host(host)
    return host


def drain_host(user, host: Host | int | str, *, request=None) -> tuple[Host, list[Container]]:
    """Cordon `host` and mark it draining; returns it and the containers still on it (not removed ones).
    Moving them off is services/drain_move.move_off (the API's {"move": true})."""
    host = _as_host(host)
    _authorize(request, user, "view", host, audit_action="host.drain")
    require_admin(request, user, "host.drain", host, "drain hosts")
    host.cordoned = host.draining = True
    host.save(update_fields=["cordoned", "draining"])
    remaining = still_on(host)
    audit.record(request, user, "host.drain", host, "ok", {"containers": len(remaining)}, status_code=200)
    events.publish_host(host)
    return host, remaining


def still_on(host: Host) -> list[Container]:
    """What a drain still has to move: the host's containers not being removed."""
    return list(Container.objects.filter(host=host).exclude(state=Container.State.REMOVING)
                .select_related("owner", "team").order_by("name"))


def check_not_cordoned(host: Host) -> None:
    """A cordoned host takes no new containers: refused at the host field (409)."""
    if host.cordoned:
        what = "draining" if host.draining else "cordoned"
        raise ServiceError("conflict", f"host {host.name} is {what}: it takes no new containers; pick another host "
                                       "(an admin uncordons it on the Hosts page)", field="host")


# --- join tokens ------------------------------------------------------------------------------------------

def join_tokens(user, *, request=None) -> QuerySet[JoinToken]:
    """Every join token with its maker and joined hosts (superusers; others are refused: a read, not audited)."""
    if user is None or not user.is_authenticated:
        raise ServiceError("not_authenticated", "sign in first", status=401)
    if not user.is_superuser:
        raise ServiceError("forbidden", "only admins see join tokens")
    return JoinToken.objects.select_related("created_by").prefetch_related("hosts")


def create_join_token(user, name: Any, *, expires: datetime | None = None, host_name: Any = "",
                      request=None) -> tuple[JoinToken, str]:
    """Make a join token (superusers): (its row, the token — shown once, only its hash is kept)."""
    action = "host.join_token.create"
    require_admin(request, user, action, ("jointoken", ""), "make join tokens")
    name = name.strip() if isinstance(name, str) else ""
    host_name = host_name.strip() if isinstance(host_name, str) else ""
    if not name or len(name) > 100:
        raise _refuse(request, user, action, ("jointoken", ""),
                      ServiceError("invalid", "give the token a name (at most 100 characters)", field="name"))
    if host_name and not join.HOST_NAME_RE.fullmatch(host_name):
        raise _refuse(request, user, action, ("jointoken", ""),
                      ServiceError("invalid", "a host name is letters, digits, '.', '_', '-' (at most 63)",
                                   field="host_name"))
    if expires is not None and expires <= timezone.now():
        raise _refuse(request, user, action, ("jointoken", ""),
                      ServiceError("invalid", "the expiry must be in the future", field="expires"))
    row, token = join.make_token(user, name, expires=expires, host_name=host_name)
    audit.record(request, user, action, row, "ok", {"name": name, "host_name": host_name,
                                                     "expires": expires.isoformat() if expires else None},
                 status_code=201)
    return row, token


def as_join_token(user, token: JoinToken | int | str, *, action: str, request=None) -> JoinToken:
    """The join token `token` names; non-admins are told it does not exist (404), as for other users' tokens."""
    row = token if isinstance(token, JoinToken) else JoinToken.objects.filter(
        pk=bounds.as_id(token, JoinToken) or 0).first()
    if row is None or user is None or not user.is_authenticated or not user.is_superuser:
        raise _refuse(request, user, action, ("jointoken", str(getattr(row, "pk", token))[:100]),
                      ServiceError("not_found", "no such join token"))
    return row


def revoke_join_token(user, token: JoinToken | int | str, *, request=None) -> JoinToken:
    """Revoke a join token (superusers): no machine joins with it any more, and the hosts that joined with it
    are refused at their worker's next heartbeat. Revoking twice keeps the first time."""
    row = as_join_token(user, token, action="host.join_token.revoke", request=request)
    if row.revoked is None:
        JoinToken.objects.filter(pk=row.pk, revoked__isnull=True).update(revoked=timezone.now())
        row.refresh_from_db()
        audit.record(request, user, "host.join_token.revoke", row, "ok",
                     {"name": row.name, "hosts": [h.name for h in row.hosts.all()]}, status_code=200)
    return row
