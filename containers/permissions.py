"""Who may see and do what (iface §4): one model for the API, the dashboard and the WebSocket streams.

Roles per team: viewer < operator < admin. Superusers may do everything; owners everything on their
own containers and images. Team members act on what their team holds according to their role.
Images marked `shared` are visible to, and usable by, every signed-in user (base images are shared
with neither owner nor team). Hosts are infrastructure every signed-in user sees.

`check()` tells "not visible" (answer 404: nothing is revealed) from "visible but not allowed" (403).
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from .models import ApiToken, AuditEvent, Container, Host, Image, Job, Network, Team, TeamMembership, Volume

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLE_RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}

# The least team role each action needs (owners and superusers need none).
REQUIRED_ROLE: dict[str, str] = {
    "view": VIEWER,
    **{f"container.{a}": OPERATOR for a in
       ("start", "stop", "kill", "restart", "pause", "unpause", "logs", "exec", "export", "commit")},
    # issue 18: send a container to another host (a move recreates it there under the same name and owner)
    "container.move": OPERATOR,
    "container.copy": OPERATOR,
    # the way in (containers/services/exec.py): files are an operator's, like exec; figures a viewer's
    **{f"container.{a}": OPERATOR for a in ("archive_get", "archive_put", "files")},
    "container.top": VIEWER,
    "container.stats": VIEWER,
    "image.use": OPERATOR,
    "volume.use": OPERATOR,
    "volume.remove": ADMIN,
    "network.use": OPERATOR,
    "network.connect": OPERATOR,
    "network.disconnect": OPERATOR,
    "network.remove": ADMIN,
    "image.save": OPERATOR,
    "image.push": OPERATOR,  # issue 15: sends the image to a registry, as save sends it to a file
    "container.remove": ADMIN,
    "image.remove": ADMIN,
    "image.tag": ADMIN,
    "image.share": ADMIN,
    "team.manage": ADMIN,
}
# What every signed-in user may do with an image shared with everyone.
SHARED_IMAGE_ACTIONS = {"view", "image.use", "image.save"}
# Team roles are cached on the user object this long, so event filtering does not query per event.
ROLES_TTL = 2.0


class PermissionError_(Exception):
    """Base of the two refusals; the message is safe to show."""


class NotVisible(PermissionError_):
    """The object does not exist for this user (answer 404)."""


class Forbidden(PermissionError_):
    """The user sees the object but may not do this (answer 403)."""


def _signed_in(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", True)


def team_roles(user, *, fresh: bool = False) -> dict[int, str]:
    """{team id: role} of `user`, cached on the user object for ROLES_TTL seconds."""
    if not _signed_in(user):
        return {}
    cached = getattr(user, "_berth_team_roles", None)
    now = time.monotonic()
    if cached is not None and not fresh and now - cached[0] < ROLES_TTL:
        return cached[1]
    roles = dict(TeamMembership.objects.filter(user_id=user.pk).values_list("team_id", "role"))
    user._berth_team_roles = (now, roles)
    return roles


def forget_roles(user) -> None:
    """Drop the cached roles (after a membership change in this process)."""
    if hasattr(user, "_berth_team_roles"):
        del user._berth_team_roles


def role_in(user, team_id: int | None) -> str | None:
    if team_id is None:
        return None
    return team_roles(user).get(team_id)


def teams_with_role(user, least: str = VIEWER) -> list[int]:
    rank = ROLE_RANK[least]
    return [t for t, r in team_roles(user).items() if ROLE_RANK.get(r, 0) >= rank]


def _role_allows(role: str | None, action: str) -> bool:
    need = REQUIRED_ROLE.get(action)
    return role is not None and need is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[need]


# --- querysets -----------------------------------------------------------------------------------------

def visible_containers(user) -> QuerySet[Container]:
    qs = Container.objects.select_related("host", "image", "owner", "team")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    return qs.filter(Q(owner_id=user.pk) | Q(team_id__in=teams_with_role(user)))


def visible_images(user) -> QuerySet[Image]:
    qs = Image.objects.select_related("host", "owner", "team")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    return qs.filter(Q(owner_id=user.pk) | Q(team_id__in=teams_with_role(user)) | Q(shared=True))


def visible_volumes(user) -> QuerySet[Volume]:
    """Own volumes and those of the user's teams; nobody else's, whatever their name."""
    qs = Volume.objects.select_related("host", "owner", "team")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    return qs.filter(Q(owner_id=user.pk) | Q(team_id__in=teams_with_role(user)))


def visible_networks(user) -> QuerySet[Network]:
    """Own networks and those of the user's teams; nobody else's, whatever their name."""
    qs = Network.objects.select_related("host", "owner", "team")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    return qs.filter(Q(owner_id=user.pk) | Q(team_id__in=teams_with_role(user)))


def _ids_as_text(qs: QuerySet) -> QuerySet:
    return qs.annotate(_sid=Cast("pk", CharField())).values("_sid")


def visible_jobs(user) -> QuerySet[Job]:
    """Own requests, plus jobs targeting containers/images the user sees (not those of shared images)."""
    qs = Job.objects.select_related("host", "requested_by")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    teams = teams_with_role(user)
    containers = Container.objects.filter(Q(owner_id=user.pk) | Q(team_id__in=teams))
    images = Image.objects.filter(Q(owner_id=user.pk) | Q(team_id__in=teams))
    volumes = Volume.objects.filter(Q(owner_id=user.pk) | Q(team_id__in=teams))
    networks = Network.objects.filter(Q(owner_id=user.pk) | Q(team_id__in=teams))
    return qs.filter(
        Q(requested_by_id=user.pk)
        | Q(target_type="container", target_id__in=_ids_as_text(containers))
        | Q(target_type="image", target_id__in=_ids_as_text(images))
        | Q(target_type="volume", target_id__in=_ids_as_text(volumes))
        | Q(target_type="network", target_id__in=_ids_as_text(networks))
    )


def visible_hosts(user) -> QuerySet[Host]:
    return Host.objects.all() if _signed_in(user) else Host.objects.none()


def visible_teams(user) -> QuerySet[Team]:
    if not _signed_in(user):
        return Team.objects.none()
    if user.is_superuser:
        return Team.objects.all()
    return Team.objects.filter(pk__in=teams_with_role(user))


def visible_audit(user) -> QuerySet[AuditEvent]:
    """Superusers: all. Team admins: their teams' events. Everyone: their own actions."""
    qs = AuditEvent.objects.select_related("actor", "team")
    if not _signed_in(user):
        return qs.none()
    if user.is_superuser:
        return qs
    return qs.filter(Q(team_id__in=teams_with_role(user, ADMIN)) | Q(actor_id=user.pk))


def visible_tokens(user) -> QuerySet[ApiToken]:
    if not _signed_in(user):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user_id=user.pk)


# --- single objects ------------------------------------------------------------------------------------

def _owned_or_team(user, obj, action: str) -> bool:
    if obj.owner_id is not None and obj.owner_id == user.pk:
        return True
    return _role_allows(role_in(user, obj.team_id), action)


def job_target(job: Job) -> Container | Image | Volume | None:
    """The container, image or volume row a job acts on, if it still exists."""
    if job.target_type == "container":
        return Container.objects.filter(pk=job.target_id).first() if job.target_id.isdigit() else None
    if job.target_type == "image":
        return Image.objects.filter(pk=job.target_id).first() if job.target_id.isdigit() else None
    if job.target_type == "volume":
        return Volume.objects.filter(pk=job.target_id).first() if job.target_id.isdigit() else None
    if job.target_type == "network":
        return Network.objects.filter(pk=job.target_id).first() if job.target_id.isdigit() else None
    return None


def can(user, action: str, obj: Any) -> bool:
    """Whether `user` may do `action` ("view", "container.start", "image.use", …) on `obj`."""
    if not _signed_in(user):
        return False
    if user.is_superuser:
        return True
    if isinstance(obj, (Container, Volume, Network)):
        return _owned_or_team(user, obj, action)
    if isinstance(obj, Image):
        if _owned_or_team(user, obj, action):
            return True
        return obj.shared and action in SHARED_IMAGE_ACTIONS
    if isinstance(obj, Host):
        return action == "view"  # hosts are shared: acting on one (host.probe) is for operators
    if isinstance(obj, Job):
        if action != "view":
            return False
        if obj.requested_by_id == user.pk:
            return True
        target = job_target(obj)
        if isinstance(target, Image) and target.owner_id != user.pk and not role_in(user, target.team_id):
            return False  # a shared image's jobs belong to whoever ran them
        return target is not None and can(user, "view", target)
    if isinstance(obj, Team):
        return _role_allows(role_in(user, obj.pk), action)
    if isinstance(obj, ApiToken):
        return obj.user_id == user.pk
    if isinstance(obj, AuditEvent):
        return obj.actor_id == user.pk or role_in(user, obj.team_id) == ADMIN
    return False


def check(user, action: str, obj: Any) -> None:
    """Raise NotVisible (→ 404) when `user` cannot see `obj`, Forbidden (→ 403) when `action` is refused."""
    if obj is None or not can(user, "view", obj):
        raise NotVisible("not found")
    if action != "view" and not can(user, action, obj):
        raise Forbidden(f"you may not {action.split('.')[-1]} this {type(obj).__name__.lower()}")


def event_visible(user, event: dict[str, Any]) -> bool:
    """Whether `user` may receive a live event (events carry owner_id and, for team objects, team_id).

    Job events carry no team: for those, the job's target decides (one query; call from sync code).
    """
    if not _signed_in(user):
        return False
    if user.is_superuser:
        return True
    kind = event.get("type")
    if kind == "host":
        return True
    owner_id = event.get("owner_id")
    if owner_id is not None and owner_id == user.pk:
        return True
    if kind in ("container", "image"):
        return event.get("team_id") is not None and role_in(user, event.get("team_id")) is not None
    if kind == "job":
        target_type, target_id = event.get("target_type"), str(event.get("target_id") or "")
        model = {"container": Container, "image": Image, "volume": Volume, "network": Network}.get(target_type)
        if model is None or not target_id.isdigit():
            return False
        row = model.objects.filter(pk=target_id).values_list("owner_id", "team_id").first()
        if row is None:
            return False
        return row[0] == user.pk or (row[1] is not None and role_in(user, row[1]) is not None)
    return False
