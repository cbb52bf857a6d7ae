"""The list reads of the API: what a user may see (containers/permissions.py decides), narrowed by the
list's query parameters and ordered. `params` None: the visible rows alone, for a detail or an action."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .. import permissions
from ..models import ApiToken, AuditEvent, Container, Host, Image, Job, Team, Volume
from .params import choice, filter_audit, filter_id, id_or_name, label_filter, ordering, owner_filters

CONTAINER_ORDERING = ["name", "created", "state", "started", "finished"]
IMAGE_ORDERING = ["name", "tag", "created", "size"]
VOLUME_ORDERING = ["name", "created"]
JOB_ORDERING = ["created", "started", "finished", "state", "kind"]
HOST_ORDERING = ["name", "created"]


def _search(qs, params, field: str = "name__icontains"):
    text = params.get("search", "").strip()
    return qs.filter(**{field: text}) if text else qs


def shown_state_in(states: list[str]) -> Q:
    """Containers whose state as shown (containers/offline.py) is one of `states`: a host offline shows its
    containers `unknown`, a removal shows `removing` whatever the host."""
    offline = Q(host__last_heartbeat__lt=Host.offline_cutoff()) | Q(host__last_heartbeat__isnull=True)
    removing = Q(state=Container.State.REMOVING)
    known = [v for v in states if v not in ("unknown", Container.State.REMOVING)]
    cond = Q(state__in=known) & ~offline
    if Container.State.REMOVING in states:
        cond |= removing
    if "unknown" in states:
        cond |= offline & ~removing
    return cond


def containers(user, params=None) -> QuerySet[Container]:
    qs = permissions.visible_containers(user)
    if params is None:
        return qs
    states = choice(params, "state", [*Container.State.values, "unknown"])
    if states:
        qs = qs.filter(shown_state_in(states))
    if params.get("host"):
        qs = qs.filter(id_or_name(params["host"], "host_id", "host__name"))
    if params.get("image"):
        value = params["image"].strip()
        if value.isascii() and value.isdigit():
            qs = qs.filter(image_id=filter_id(value, "image", Image))
        else:  # a name without a tag means :latest, as everywhere else
            ref = value if ":" in value.rsplit("/", 1)[-1] else f"{value}:latest"
            qs = qs.filter(Q(image_ref=value) | Q(image_ref=ref))
    if params.get("owner"):
        qs = qs.filter(id_or_name(params["owner"], "owner_id", "owner__username"))
    if params.get("team"):
        qs = qs.filter(id_or_name(params["team"], "team_id", "team__name"))
    qs = _search(label_filter(qs, params), params)
    return ordering(qs, params, CONTAINER_ORDERING, ["-created"])


def images(user, params=None) -> QuerySet[Image]:
    from ..api.params import query_bool  # the wire form of a boolean parameter, one definition

    qs = permissions.visible_images(user)
    if params is None:
        return qs
    qs = owner_filters(qs, params)
    if params.get("name"):
        qs = qs.filter(name=params["name"])
    if "shared" in params:
        qs = qs.filter(shared=query_bool(params, "shared"))
    return ordering(_search(qs, params), params, IMAGE_ORDERING, ["name", "tag"])


def volumes(user, params=None) -> QuerySet[Volume]:
    qs = permissions.visible_volumes(user).prefetch_related("containers")
    if params is None:
        return qs
    qs = owner_filters(qs, params)
    if params.get("name"):
        qs = qs.filter(name=params["name"])
    qs = _search(label_filter(qs, params), params)
    return ordering(qs, params, VOLUME_ORDERING, ["name", "-created"])


def jobs(user, params=None) -> QuerySet[Job]:
    qs = permissions.visible_jobs(user)
    if params is None:
        return qs
    states = choice(params, "state", list(Job.State.values))
    if states:
        qs = qs.filter(state__in=states)
    if params.get("kind"):
        qs = qs.filter(kind=params["kind"])
    if params.get("host"):
        qs = qs.filter(id_or_name(params["host"], "host_id", "host__name"))
    if params.get("target_type"):
        qs = qs.filter(target_type=params["target_type"])
    if params.get("target_id"):
        qs = qs.filter(target_id=params["target_id"])
    return ordering(qs, params, JOB_ORDERING, ["-created"])


def hosts(user, params=None) -> QuerySet[Host]:
    qs = permissions.visible_hosts(user)
    if params is None:
        return qs
    return ordering(_search(qs, params), params, HOST_ORDERING, ["name"])


def audit_events(user, params=None, *, strict: bool = True) -> QuerySet[AuditEvent]:
    """`strict` (the API) refuses empty or unknown values; the dashboard's form sends empty fields."""
    qs = permissions.visible_audit(user)
    return qs if params is None else filter_audit(qs, params, strict=strict)


def teams(user) -> QuerySet[Team]:
    return permissions.visible_teams(user).order_by("name")


def live_tokens(user) -> QuerySet[ApiToken]:
    """A revoked token is deleted as far as the API goes (GET and DELETE answer 404); the row stays for
    the record and the dashboard's token page."""
    return permissions.visible_tokens(user).filter(revoked__isnull=True)
