"""Container services: create (name, image, spec checked against the team's limits and the host's
facts) and the lifecycle actions."""

from __future__ import annotations

import os
import random
import signal as signal_module
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from workers.engine.containers.config import NAME_RE  # the engine's rule: pure, no disk

from .. import events, host_facts, namespaces, permissions
from .. import limits as team_limits
from ..models import Container, Host, Image, Job, Team
from .common import (
    ServiceError,
    _as_host,
    _as_team,
    _authorize,
    _bool,
    _existing,
    _image_ref,
    _int,
    _refuse,
    _submit,
    scoped_key,
)
from .hosts import check_not_cordoned
from .images import _check_image_name_free

CONTAINER_ACTIONS = ("start", "stop", "kill", "restart", "pause", "unpause", "remove", "export", "commit", "logs")
# States from which an action makes sense; anything else is a readable "conflict".
ACTION_STATES: dict[str, tuple[str, ...]] = {
    "start": ("created", "exited"),
    "stop": ("running", "paused"),
    "kill": ("running", "paused"),
    "restart": ("created", "running", "paused", "exited"),
    "pause": ("running",),
    "unpause": ("paused",),
    "export": ("created", "running", "paused", "exited"),
    "commit": ("created", "running", "paused", "exited"),
    "logs": ("created", "running", "paused", "exited", "dead"),
    "remove": ("created", "running", "paused", "exited", "dead"),
}


# --- containers ---------------------------------------------------------------------------------------

_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nimble", "quiet", "sharp",
               "swift", "tidy", "vivid", "witty", "zesty", "bold", "crisp", "gentle", "proud", "sunny")
_NOUNS = ("otter", "heron", "lynx", "puffin", "marten", "walrus", "falcon", "badger", "gecko", "ibis",
          "koala", "lemur", "narwhal", "osprey", "quokka", "raven", "stoat", "tapir", "wombat", "yak")


def generate_name(host: Host, namespace: str = namespaces.SYSTEM) -> str:
    """A free Docker-style name in `namespace` on `host`: adjective_animal, with a number if needed."""
    rng = random.SystemRandom()
    for attempt in range(50):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}"
        if attempt >= 10:
            name += f"{rng.randrange(1000)}"
        if not Container.objects.filter(host=host, namespace=namespace, name=name).exists():
            return name
    return f"container_{uuid.uuid4().hex[:12]}"


def _name_order(user, namespace: str):
    """Sort key over images of one name:tag: the new object's own name space first, then the user's
    personal one, then the system's, then anything else visible (another team's shared image)."""
    order = [namespace, namespaces.of_user(user.pk), namespaces.SYSTEM]
    return lambda img: (order.index(img.namespace) if img.namespace in order else len(order), img.pk)


def _resolve_image(user, host: Host, image: Image | str, namespace: str = namespaces.SYSTEM) -> Image:
    if isinstance(image, Image):
        if image.host_id != host.pk:
            raise ServiceError("no_such_image", f"image {image.ref} is not on host {host.name}", field="image")
        found = image
    else:
        try:
            name, tag = _image_ref(image, "image")
        except ServiceError as exc:  # a name that cannot exist names no image
            raise ServiceError("no_such_image", exc.message, field="image") from None
        candidates = list(permissions.visible_images(user).filter(host=host, name=name, tag=tag))
        found = min(candidates, key=_name_order(user, namespace)) if candidates else None
        if found is None:
            raise ServiceError("no_such_image", f"no image {name}:{tag} on host {host.name}", field="image")
    if not permissions.can(user, "view", found):
        raise ServiceError("no_such_image", f"no image {found.ref} on host {host.name}", field="image")
    if not permissions.can(user, "image.use", found):
        raise ServiceError("forbidden", f"you may not run containers from {found.ref}", field="image")
    return found


def _check_mounts(user, mounts: list[str], roots: list[str] | None = None) -> None:
    """Bind mounts are for superusers, or under the host's allowed roots (its heartbeat's facts, compared as
    text: the host checks them again on its own disk, without following links)."""
    roots = roots or []
    for spec in mounts:
        source = spec.split(":", 1)[0]
        if source.startswith("/") and not user.is_superuser:
            resolved = os.path.normpath(source)
            if not any(resolved == r or resolved.startswith(r.rstrip("/") + "/") for r in roots):
                allowed = ", ".join(roots) or "none"
                raise ServiceError("forbidden", f"bind mount of {source} refused: only superusers may bind-mount "
                                                f"host paths (allowed roots: {allowed})", field="mounts")


def _container_params(user, host: Host, values: dict[str, Any], team: Team | None = None) -> dict[str, Any]:
    """The container spec (workers/engine/containers/spec.py) checked, with the team's limits and the host's
    facts: ServiceError names the field. Limits not given get the team's (or the system's) defaults; one above
    its maximum is refused. Returns the job params: the spec's JSON (and bind_roots for the host)."""
    from workers.engine.containers.errors import InvalidConfig
    from workers.engine.containers.spec import ContainerSpec

    try:
        spec = ContainerSpec.from_json(values)
        if spec.cpus is not None and host.cpus and spec.cpus > host.cpus:  # the host's fact, not our CPUs
            raise InvalidConfig("cpus", f"cpus must be more than 0 and at most {host.cpus} (the CPUs of host "
                                        f"{host.name})")
        if spec.memory and host_facts.memory_bytes(host) and spec.memory > host_facts.memory_bytes(host):
            raise InvalidConfig("memory", f"memory must be at most {host_facts.memory_bytes(host)} bytes (the "
                                          f"memory of host {host.name})")
        limited = team_limits.container_values(team_limits.for_team(team), memory=spec.memory, cpus=spec.cpus,
                                               pids_limit=spec.pids_limit, disk=spec.disk)
        spec = spec.replace(**limited)
    except InvalidConfig as exc:
        raise ServiceError(exc.code, str(exc), field=exc.field) from None
    except team_limits.LimitError as exc:
        raise ServiceError("invalid", exc.message, field=exc.field) from None
    _check_mounts(user, spec.mounts, host_facts.bind_roots(host))
    return {**spec.to_json(), **_bind_roots(user, spec.mounts, host)}


def _bind_roots(user, mounts: list[str], host: Host) -> dict[str, Any]:
    """The host checks a non-superuser's bind sources again (against its own roots), on its own disk and
    without following links."""
    if user.is_superuser or not any(m.startswith("/") for m in mounts):
        return {}
    return {"bind_roots": host_facts.bind_roots(host)}


def create_container(user, *, host: Host | int | str | None = None, image: Image | str, name: str = "", start: bool = True,
                     team: Team | int | None = None, spec: dict[str, Any] | None = None, user_spec: str | None = None,
                     placement: dict[str, Any] | None = None, request=None, idempotency_key: str | None = None,
                     **fields: Any) -> tuple[Container, Job]:
    """Make the Container row (state "created") and queue container.create (and its start).

    What the container is asked to be is `spec` (container spec JSON) and/or its fields as keyword
    arguments; `user_spec` is the spec's `user` (the first argument is who asks). With no `host`, Berth
    places it (services/placement.py; `placement` may ask for labels) and keeps why on the row."""
    from . import networks as services_networks
    from . import placement as services_placement
    from . import volumes as services_volumes

    action = "container.create"
    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, action)
        if earlier is not None:
            container = Container.objects.filter(pk=earlier.target_id).first() if earlier.target_id else None
            return container, earlier
        placed = host in (None, "")
        if not placed and placement is not None:  # a named host is not second-guessed by labels
            raise ServiceError("invalid", "give a host or a placement, not both", field="placement")
        wanted = services_placement.parse_placement(placement)
        if not placed:
            host = _as_host(host)
            check_not_cordoned(host)
        name = (name or "").strip()
        if name and not NAME_RE.match(name):
            raise ServiceError("invalid", f"invalid container name {name!r}: use letters, digits, '_', '.', '-' "
                                          "(starting with a letter or digit, at most 128)", field="name")
        team_row = _as_team(user, team)
        namespace = namespaces.for_container(user, team_row.pk if team_row else None)
        if len(namespaces.engine_name(namespace, name)) > 128:
            raise ServiceError("invalid", f"invalid container name {name!r}: at most "
                                          f"{127 - len(namespace)} characters", field="name")
        chosen: dict[str, Any] | None = None
        if placed:
            host, image_row, chosen = services_placement.choose_host(user, image, namespace, wanted)
        else:
            image_row = _resolve_image(user, host, image, namespace)
        values = {**(spec or {}), **fields, **({"user": user_spec} if user_spec is not None else {})}
        params = _container_params(user, host, values, team_row)
        start = _bool(start, "start")
        # Volume names are looked up in the creator's (or the team's) name space, never host-wide.
        planned = services_volumes.plan_mounts(user, host, team_row, params["mounts"])
        planned_nets = services_networks.plan_networks(user, host, namespace, params)  # in the name space too
        # Names are per name space (yours or your team's): another tenant's names are never revealed.
        if name and Container.objects.filter(host=host, namespace=namespace, name=name).exists():
            raise ServiceError("name_taken", f"the name {name} is already in use on host {host.name}", field="name")
        name = name or generate_name(host, namespace)
        params.update(name=name, image=image_row.ref, start=start)
        try:
            with transaction.atomic():
                volumes = services_volumes.attach_volumes(request, user, host, team_row, planned, params)
                nets = services_networks.attach_networks(user, host, namespace, team_row, planned_nets, params, name)
                container = Container.objects.create(
                    name=name, namespace=namespace, host=host, image=image_row, image_ref=image_row.ref,
                    owner=user, team=team_row,
                    command=params["command"] or [], config=params, state=Container.State.CREATED,
                    labels=params["labels"], restart_policy=params["restart_policy"], placement=chosen)
                container.volumes.set(volumes)
                container.networks.set(nets)
                job = _submit(request, user, action, host, container, params, key)
        except IntegrityError:
            raise ServiceError("name_taken", f"the name {name} is already in use on host {host.name}",
                               field="name") from None
        return container, job
    except ServiceError as exc:
        _refuse(request, user, action, ("container", "", name if isinstance(name, str) else ""), exc)
        raise


def _action_params(user, container: Container, action: str, params: dict[str, Any]) -> dict[str, Any]:
    if action in ("stop", "restart"):
        return {"timeout": _int(params.get("timeout"), "timeout", low=0, high=3600, default=10)}
    if action == "kill":
        sig = params.get("signal", "SIGKILL")
        if isinstance(sig, bool):
            raise ServiceError("invalid", "signal must be a name like SIGTERM or a number", field="signal")
        if isinstance(sig, str) and sig.strip().isascii() and sig.strip().isdigit():
            if len(sig.strip()) > 3:  # no int() of a huge digit string
                raise ServiceError("invalid", f"signal {sig.strip()[:20]}… is out of range 1..64", field="signal")
            sig = int(sig.strip())
        if isinstance(sig, int):
            if not 1 <= sig <= 64:
                raise ServiceError("invalid", f"signal {sig} is out of range 1..64", field="signal")
            return {"signal": sig}
        text = str(sig or "SIGKILL").strip().upper()
        text = text if text.startswith("SIG") else "SIG" + text
        if text not in signal_module.Signals.__members__:
            raise ServiceError("invalid", f"unknown signal {str(sig)[:20]!r}", field="signal")
        return {"signal": text}
    if action == "remove":
        return {"force": _bool(params.get("force"), "force")}
    if action == "logs":
        since = params.get("since")
        if since not in (None, ""):
            try:
                since = float(since)
            except (TypeError, ValueError):
                raise ServiceError("invalid", "since must be a unix timestamp (seconds)", field="since") from None
        else:
            since = None
        return {"tail": _int(params.get("tail"), "tail", low=0), "since": since,
                "timestamps": _bool(params.get("timestamps"), "timestamps"), "stdout": True, "stderr": True}
    if action == "commit":
        name, tag = _image_ref(params.get("ref"), "ref")
        changes = params.get("changes") or []
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise ServiceError("invalid", "changes must be a list of strings like 'CMD [\"sh\"]'", field="changes")
        for field in ("author", "message"):
            if not isinstance(params.get(field) or "", str):
                raise ServiceError("invalid", f"{field} must be a string", field=field)
        team_id = params.get("team_id", container.team_id)
        if team_id is not None and team_id == container.team_id:
            team = container.team  # the image stays with the container's team
        else:
            team = _as_team(user, team_id, field="team_id")
        shared = _bool(params.get("shared"), "shared")
        if shared and not permissions.can(user, "image.share", container):
            raise ServiceError("forbidden", "sharing an image with everyone needs the admin role", field="shared")
        _check_image_name_free(container.host, namespaces.for_image(user, team.pk if team else None), name, tag)
        return {"ref": f"{name}:{tag}", "author": params.get("author") or user.get_username(),
                "message": params.get("message") or "", "changes": changes,
                "team_id": team.pk if team else None, "shared": shared}
    return {}


def container_action(user, container: Container, action: str, *, params: dict[str, Any] | None = None,
                     request=None, idempotency_key: str | None = None) -> Job:
    """Queue one of start/stop/kill/restart/pause/unpause/remove/export/commit/logs on `container`."""
    if action not in CONTAINER_ACTIONS:
        raise ServiceError("invalid", f"unknown container action {action!r}", field="action")
    kind = f"container.{action}"
    _authorize(request, user, kind, container)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "container", str(container.pk))
        if earlier is not None:
            return earlier
        params = _action_params(user, container, action, dict(params or {}))
        if container.state not in ACTION_STATES[action]:
            raise ServiceError("conflict", f"cannot {action} container {container.name}: it is {container.state}")
        if action == "remove" and container.state in ("running", "paused") and not params["force"]:
            raise ServiceError("conflict", f"container {container.name} is {container.state}: stop it first "
                                           "or remove with force")
    except ServiceError as exc:
        raise _refuse(request, user, kind, container, exc) from None
    with transaction.atomic():
        job = _submit(request, user, kind, container.host, container, params, key)
        if action == "remove":
            # Shown as "removing" until the host is done; the handler puts the real state back if it refuses.
            Container.objects.filter(pk=container.pk).update(state=Container.State.REMOVING)
            container.state = Container.State.REMOVING
            transaction.on_commit(lambda: events.publish_container(container))
        return job
