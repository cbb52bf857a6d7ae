"""Volume services: create, remove, and the volumes a new container mounts (issue #10).

A volume name lives in its owner's name space: a user's personal volumes, or a team's. `name:/dst` in a
container's mounts is looked up in the creator's name space (the container's team when it is made for
one), never host-wide; a name not there yet makes a new volume for the creator, as `docker run -v` does.
The host is then told the volume's engine id, so it mounts exactly that directory.

Same shape as the other services (containers/services/): permission check, validation naming the field, audit (refusals
too), and a Job; ServiceError is the one refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from .. import limits, permissions
from ..models import Container, Host, Job, Team, Volume
from .common import (
    ServiceError,
    _as_host,
    _as_team,
    _authorize,
    _bool,
    _existing,
    _refuse,
    _submit,
    scoped_key,
)

NAME_MAX = 128


def _check_name(name: Any, field: str = "name") -> str:
    from workers.engine.containers.config import VOLUME_RE

    if not isinstance(name, str) or not name.strip():
        raise ServiceError("invalid", "a volume name is required", field=field)
    name = name.strip()
    if len(name) > NAME_MAX or not VOLUME_RE.match(name):
        raise ServiceError("invalid", f"invalid volume name {name[:80]!r}: use letters, digits, '_', '.', '-' "
                                      f"(starting with a letter or digit, at most {NAME_MAX})", field=field)
    return name


def _check_labels(labels: Any) -> dict[str, str]:
    if labels in (None, ""):
        return {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) and k
                                               for k, v in labels.items()):
        raise ServiceError("invalid", "labels must be a mapping of non-empty strings to strings", field="labels")
    return dict(labels)


def name_space(user, team: Team | None) -> Q:
    """The volumes a name is looked up among: the team's, or the user's own that belong to no team."""
    if team is not None:
        return Q(team_id=team.pk)
    return Q(owner_id=user.pk, team__isnull=True)


def _volume_params(volume: Volume) -> dict[str, Any]:
    return {"engine_id": volume.engine_id, "name": volume.name, "labels": volume.labels, "size": volume.size}


def _size(team: Team | None, size: Any) -> int | None:
    """The volume's size limit: the team's (or the system's) default, refused above its maximum."""
    from workers.engine.containers.config import parse_size
    from workers.engine.containers.errors import InvalidConfig

    if size in (None, ""):
        size = None
    elif isinstance(size, str):
        try:
            size = parse_size(size, "size")
        except InvalidConfig as exc:
            raise ServiceError("invalid", str(exc), field="size") from None
    elif isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 2**62:
        raise ServiceError("invalid", "size must be a positive number of bytes or a size like 1g", field="size")
    try:
        return limits.volume_size(limits.for_team(team), size)
    except limits.LimitError as exc:
        raise ServiceError("invalid", str(exc), field=exc.field) from None


def _new_volume(user, host: Host, team: Team | None, name: str, labels: dict[str, str],
                size: int | None = None) -> Volume | None:
    """A new row, or None when the name was taken meanwhile (the unique constraints decide)."""
    try:
        with transaction.atomic():
            return Volume.objects.create(name=name, host=host, owner=user, team=team, labels=labels, size=size)
    except IntegrityError:
        return None


def create_volume(user, *, host: Host | int | str, name: str, team: Team | int | None = None,
                  labels: dict[str, str] | None = None, size: int | str | None = None, request=None,
                  idempotency_key: str | None = None) -> tuple[Volume | None, Job]:
    """Make the Volume row in the user's (or `team`'s) name space and queue volume.create on its host."""
    action = "volume.create"
    shown = name if isinstance(name, str) else ""
    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, action)
        if earlier is not None:
            return Volume.objects.filter(pk=earlier.target_id or 0).first(), earlier
        host = _as_host(host)
        team_row = _as_team(user, team)
        name = _check_name(name)
        labels = _check_labels(labels)
        size = _size(team_row, size)
        where = f"team {team_row.name}" if team_row else "your volumes"
        taken = ServiceError("name_taken", f"a volume named {name} already exists in {where} on host {host.name}",
                             field="name")
        if Volume.objects.filter(name_space(user, team_row), host=host, name=name).exists():
            raise taken
        with transaction.atomic():
            volume = _new_volume(user, host, team_row, name, labels, size)
            if volume is None:
                raise taken
            job = _submit(request, user, action, host, volume, _volume_params(volume), key)
        return volume, job
    except ServiceError as exc:
        _refuse(request, user, action, ("volume", "", shown[:100]), exc)
        raise


def remove_volume(user, volume: Volume, *, force: Any = False, request=None,
                  idempotency_key: str | None = None) -> Job:
    """Queue volume.remove. Refused while a container uses the volume; `force` only lets it go while the
    containers that used it are being removed themselves."""
    kind = "volume.remove"
    _authorize(request, user, kind, volume)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "volume", str(volume.pk))
        if earlier is not None:
            return earlier
        force = _bool(force, "force")
        if volume.state == Volume.State.REMOVING:
            raise ServiceError("conflict", f"volume {volume.name} is being removed already", field="volume")
        using = list(volume.containers.all())
        active = [c for c in using if c.state != Container.State.REMOVING]
        if active:
            seen = [c.name for c in active if permissions.can(user, "view", c)]
            names = ", ".join(seen[:5]) or f"{len(active)} container(s)"
            raise ServiceError("volume_in_use", f"volume {volume.name} is in use by {names}: remove the "
                                                "container(s) first", field="volume", status=409)
        if using and not force:
            raise ServiceError("volume_in_use", f"volume {volume.name} is used by container(s) being removed: "
                                                "try again when they are gone, or remove with force",
                               field="volume", status=409)
    except ServiceError as exc:
        raise _refuse(request, user, kind, volume, exc) from None
    with transaction.atomic():
        if not Volume.objects.filter(pk=volume.pk, state=Volume.State.READY).update(state=Volume.State.REMOVING):
            raise _refuse(request, user, kind, volume,
                          ServiceError("conflict", f"volume {volume.name} is being removed already", field="volume"))
        volume.state = Volume.State.REMOVING
        return _submit(request, user, kind, volume.host, volume, {**_volume_params(volume), "force": force}, key)


# --- the volumes of a new container --------------------------------------------------------------------

@dataclass
class PlannedMount:
    spec: str  # as the user wrote it
    parsed: dict[str, Any]  # workers.engine.containers.config.parse_mount
    volume: Volume | None = None  # the existing volume it names (None: made at create)


def plan_mounts(user, host: Host, team: Team | None, mounts: list[str]) -> list[PlannedMount]:
    """Each mount of a container about to be made, its volume looked up in the creator's name space.
    Nothing is changed; refusals name the field `mounts`."""
    from workers.engine.containers.config import parse_mount

    planned = []
    for spec in mounts:
        parsed = parse_mount(spec)  # already checked by the engine's rules in _container_params
        item = PlannedMount(spec, parsed)
        if parsed["type"] == "volume":
            item.volume = Volume.objects.filter(name_space(user, team), host=host, name=parsed["name"]).first()
            if item.volume is not None:
                _check_usable(user, item.volume)
        planned.append(item)
    return planned


def _check_usable(user, volume: Volume) -> None:
    if volume.state == Volume.State.REMOVING:
        raise ServiceError("conflict", f"volume {volume.name} is being removed", field="mounts")
    if not permissions.can(user, "volume.use", volume):
        raise ServiceError("forbidden", f"you may not mount volume {volume.name}: it needs the operator role",
                           field="mounts")


def attach_volumes(request, user, host: Host, team: Team | None, planned: list[PlannedMount],
                   params: dict[str, Any]) -> list[Volume]:
    """Inside the container's create transaction: make the missing volumes (row + volume.create job) and
    point the params at engine ids. params["mounts"] becomes what the host mounts (`<engine id>:/dst`),
    params["requested_mounts"] keeps what the user wrote, params["volumes"] says which volume is where."""
    rows: dict[str, Volume] = {}
    mounts, shown = [], []
    for item in planned:
        parsed = item.parsed
        if parsed["type"] != "volume":
            mounts.append(item.spec)
            continue
        name = parsed["name"]
        volume = rows.get(name) or item.volume
        if volume is None:
            volume = _new_volume(user, host, team, name, {}, _size(team, None))
            if volume is None:  # made meanwhile by someone in the same name space
                volume = Volume.objects.get(name_space(user, team), host=host, name=name)
                _check_usable(user, volume)
            else:
                _submit(request, user, "volume.create", host, volume, _volume_params(volume), None)
        rows[name] = volume
        mounts.append(f"{volume.engine_id}:{parsed['destination']}" + (":ro" if parsed["read_only"] else ""))
        shown.append({"volume_id": volume.pk, "name": volume.name, "destination": parsed["destination"],
                      "read_only": parsed["read_only"], "engine_id": volume.engine_id, "size": volume.size})
    params["requested_mounts"] = [item.spec for item in planned]
    params["mounts"] = mounts
    params["volumes"] = shown
    return list(rows.values())
