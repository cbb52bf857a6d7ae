"""What every service shares: ServiceError (code, message, field, status), the permission check and
audit of a refusal, idempotency keys, job submission, and parsing of hosts, teams, refs, booleans, numbers."""

from __future__ import annotations

import re
from typing import Any

from .. import audit, bounds, permissions
from .. import jobs as job_dispatch
from ..models import Host, Job, Team

# Idempotency keys: printable ASCII without spaces, as the API schema documents them.
IDEMPOTENCY_KEY_CHARS = "[!-~]"
IDEMPOTENCY_KEY_MAX = 150
IDEMPOTENCY_KEY = re.compile(f"{IDEMPOTENCY_KEY_CHARS}{{1,{IDEMPOTENCY_KEY_MAX}}}")
STATUS = {"invalid": 400, "not_a_tarball": 400, "no_such_image": 404, "name_taken": 409, "conflict": 409,
          "forbidden": 403, "not_found": 404, "not_authenticated": 401, "idempotency_key_reused": 409,
          "gone": 410}


class ServiceError(Exception):
    """A refused request: `.code` (stable), `.message` (readable), `.field` (or None), `.status` (HTTP)."""

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status or STATUS.get(code, 400)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            out["fields"] = {self.field: [self.message]}
        return out



# --- shared steps -------------------------------------------------------------------------------------

def _refuse(request, user, action: str, target: Any, error: ServiceError) -> ServiceError:
    result = "denied" if error.status in (401, 403, 404) else "invalid"
    audit.record(request, user, action, target, result, {"code": error.code, "message": error.message,
                                                         **({"field": error.field} if error.field else {})},
                 status_code=error.status)
    return error


def _authorize(request, user, action: str, obj: Any, audit_action: str | None = None) -> None:
    """permissions.check as ServiceErrors, with the refusal in the audit log."""
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, audit_action or action, obj,
                      ServiceError("not_authenticated", "sign in first", status=401))
    try:
        permissions.check(user, action, obj)
    except permissions.NotVisible:
        what = type(obj).__name__.lower() if obj is not None else "object"
        raise _refuse(request, user, audit_action or action, obj,
                      ServiceError("not_found", f"no such {what}")) from None
    except permissions.Forbidden as exc:
        raise _refuse(request, user, audit_action or action, obj, ServiceError("forbidden", str(exc))) from None


def scoped_key(user, key: str | None) -> str | None:
    """Idempotency keys are per user: two users using the same key never share a job."""
    if not key:
        return None
    key = str(key).strip()
    if not key:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ServiceError("invalid", "Idempotency-Key must be 1 to 150 printable ASCII characters without spaces",
                           field="idempotency_key")
    return f"u{user.pk}:{key}"


def _existing(user, key: str | None, kind: str, target_type: str = "", target_id: str = "") -> Job | None:
    """The job an earlier request with the same key made; refuse reusing a key for something else."""
    if not key:
        return None
    job = Job.objects.filter(idempotency_key=key).first()
    if job is None:
        return None
    if job.kind != kind or (target_id and (job.target_type, job.target_id) != (target_type, target_id)):
        raise ServiceError("idempotency_key_reused",
                           f"this Idempotency-Key was already used for {job.kind} (job #{job.pk})",
                           field="idempotency_key")
    return job


def _submit(request, user, kind: str, host: Host, target: Any, params: dict[str, Any], key: str | None,
            audit_target: Any = None) -> Job:
    job = job_dispatch.submit(kind, host, params=params, requested_by=user, target=target, idempotency_key=key)
    audit.record(request, user, kind, audit_target if audit_target is not None else target, "ok",
                 {"job": job.pk}, status_code=202)
    return job


def _as_host(host: Host | int | str) -> Host:
    if isinstance(host, Host):
        return host
    found = None
    if isinstance(host, int) or (isinstance(host, str) and host.isascii() and host.isdigit()):
        found = Host.objects.filter(pk=bounds.as_id(host, Host) or 0).first()
    if found is None and isinstance(host, str):
        found = Host.objects.filter(name=host).first()
    if found is None:
        raise ServiceError("no_such_host", f"no such host {host!r}", field="host", status=404)
    return found


def _as_team(user, team: Team | int | None, field: str = "team", least: str = permissions.OPERATOR) -> Team | None:
    """The team a new object goes to; the user needs at least `least` there (superusers anything)."""
    if team in (None, ""):
        return None
    if not isinstance(team, Team):
        try:
            team = Team.objects.filter(pk=int(team)).first()
        except (TypeError, ValueError):
            team = None
    if team is None or not (user.is_superuser or permissions.role_in(user, team.pk)):
        raise ServiceError("no_such_team", "no such team", field=field, status=404)
    role = permissions.role_in(user, team.pk)
    if not user.is_superuser and permissions.ROLE_RANK[role] < permissions.ROLE_RANK[least]:
        raise ServiceError("forbidden", f"you need the {least} role in team {team.name} for this", field=field)
    return team


def _image_ref(ref: Any, field: str = "ref") -> tuple[str, str]:
    """("name", "tag") of a `name[:tag]` reference (tag defaults to latest)."""
    from workers.engine.images import refs

    if not isinstance(ref, str) or not ref.strip():
        raise ServiceError("invalid", "an image reference name[:tag] is required", field=field)
    try:
        name, _, tag = refs.tag_of(ref.strip()).rpartition(":")
    except Exception as exc:  # InvalidReference: readable already
        raise ServiceError("invalid", str(exc), field=field) from None
    return name, tag


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ServiceError("invalid", f"{field} must be true or false", field=field)


def _int(value: Any, field: str, *, low: int | None = None, high: int | None = None,
         default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ServiceError("invalid", f"{field} must be a whole number", field=field)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ServiceError("invalid", f"{field} must be a whole number, not {str(value)[:30]!r}", field=field) from None
    if (low is not None and n < low) or (high is not None and n > high):
        bounds = f"from {low}" + (f" to {high}" if high is not None else " up")
        raise ServiceError("invalid", f"{field} must be {bounds}, not {n}", field=field)
    return n
