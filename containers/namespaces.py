"""Name spaces: whose name a container or image name is, and how it maps to the host's engine names.

A user's personal objects live in the user's name space ("u<user id>"), a team's objects in the team's
("t<team id>"); the system name space ("") holds the base images the seeding and superusers make. Two
tenants may each have a container `web` and an image `app:1` on the same host. The engine's names on a
host stay unique because the control plane maps each user-facing name to a scoped one:

    image `app:1` of user 7    -> engine ref  `u7/app:1`
    image `app:1` of team 3    -> engine ref  `t3/app:1`
    base image `busybox:latest` -> engine ref `busybox:latest` (the system's names are unprefixed)
    container `web` of user 7  -> engine name `u7.web`

Pages and API responses show only the user-facing name (`Image.name`/`tag`, `Container.name`).
This module is plain Python over ids (no queries), shared by the services and the worker's handlers.
"""

from __future__ import annotations

import re

SYSTEM = ""
_SCOPE = re.compile(r"^[ut][0-9]+$")


class NameError_(ValueError):
    """A name that cannot live in the name space asked for; the message is safe to show."""


def of_user(user_id: int) -> str:
    return f"u{int(user_id)}"


def of_team(team_id: int) -> str:
    return f"t{int(team_id)}"


def for_image(user, team_id: int | None) -> str:
    """Where a new image goes: its team's name space, else the system's for a superuser (or a job the
    system made), else its owner's."""
    if team_id is not None:
        return of_team(team_id)
    if user is None or getattr(user, "is_superuser", False):
        return SYSTEM
    return of_user(user.pk)


def for_container(user, team_id: int | None) -> str:
    """Where a new container's name goes: its team's name space, else its owner's."""
    if team_id is not None:
        return of_team(team_id)
    if user is None:
        return SYSTEM
    return of_user(user.pk)


def reserved(name: str) -> bool:
    """Whether an image name's first component looks like a name-space prefix (`u7/…`, `t3/…`): such
    names are refused in every name space, so that no system name is ever another tenant's engine ref."""
    first, slash, _ = name.partition("/")
    return bool(slash) and bool(_SCOPE.match(first))


def engine_ref(namespace: str, name: str, tag: str) -> str:
    """The host's image ref of `name:tag` in `namespace` (see check_new_ref for new names)."""
    return f"{namespace}/{name}:{tag}" if namespace else f"{name}:{tag}"


def check_new_ref(namespace: str, name: str, tag: str) -> str:
    """engine_ref of a name about to be made; NameError_ when it cannot be one."""
    from workers.engine.images import refs
    from workers.engine.images.errors import InvalidReference

    if reserved(name):
        raise NameError_(f"image names starting with {name.partition('/')[0]}/ are reserved: choose another name")
    ref = engine_ref(namespace, name, tag)
    try:
        refs.tag_of(ref)
    except InvalidReference:
        raise NameError_(f"{name}:{tag} cannot be kept in a personal or team name space (a registry host "
                         "with a port or capital letters is not allowed there)") from None
    return ref


def split_engine_ref(ref: str) -> tuple[str, str, str]:
    """(namespace, name, tag) of a host's `[ns/]name:tag` ref (the inverse of engine_ref)."""
    name, _, tag = ref.rpartition(":")
    first, slash, rest = name.partition("/")
    if slash and _SCOPE.match(first):
        return first, rest, tag
    return SYSTEM, name, tag


def engine_name(namespace: str, name: str) -> str:
    """The host's container name of `name` in `namespace`."""
    return f"{namespace}.{name}" if namespace else name


def owner_ids(namespace: str) -> tuple[int | None, int | None]:
    """(user id, team id) a name space belongs to; (None, None) for the system's."""
    if namespace.startswith("u"):
        return int(namespace[1:]), None
    if namespace.startswith("t"):
        return None, int(namespace[1:])
    return None, None
