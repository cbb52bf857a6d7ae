"""Move and copy a container to another host (issue 18): the web side's half.

The service checks who may (operate on the source; create on the target host, which must take new
containers), plans the container on the target as a create would (the spec checked against the target's
facts and the team's limits, its named volumes and networks looked up in the new row's name space there),
makes the target's Container and Volume rows, and queues one job on the SOURCE host: `container.move` or
`container.copy` (workers/handlers/move.py), which runs the chain source → target → source. Refusals change
nothing. A move keeps the owner and team; a copy belongs to who asked (in the source's team when the
source is a team's)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from .. import namespaces
from ..models import Container, Host, Job, Volume
from .common import ServiceError, _as_host, _authorize, _existing, _refuse, _submit, scoped_key
from .containers import _container_params
from .hosts import check_not_cordoned

MOVABLE_STATES = ("created", "running", "paused", "exited")


def _target_host(host: Any, source: Container) -> Host:
    if host in (None, ""):
        raise ServiceError("invalid", "name the host to send the container to", field="host")
    target = _as_host(host)
    if target.pk == source.host_id:
        raise ServiceError("invalid", f"the container is on host {target.name} already: pick another host",
                           field="host")
    check_not_cordoned(target)
    return target


def _target_params(user, source: Container, host: Host, namespace: str, team) -> dict[str, Any]:
    """The container spec as the user asked for it (mounts and networks by their names, not the source host's
    engine names), checked again for the target host."""
    from workers.engine.containers.spec import ContainerSpec

    config = dict(source.config or {})
    values = ContainerSpec.from_json(config, strict=False).to_json()
    values["mounts"] = list(config.get("requested_mounts", config.get("mounts")) or [])
    values["networks"] = list(config.get("requested_networks", config.get("networks")) or [])
    values.pop("network_aliases", None)  # attach_networks puts the name back
    return _container_params(user, host, values, team)


def _plan_volumes(source: Container, host: Host, namespace: str, owner, team, params: dict[str, Any]
                  ) -> tuple[list[Volume], dict[str, str]]:
    """New Volume rows on the target for the source's named volumes (their data travels with the job), the
    mounts pointed at them; a name the target's name space has already is refused (never overwritten)."""
    from workers.engine.containers.config import parse_mount

    by_name = {v["name"]: v for v in (source.config or {}).get("volumes") or []}
    rows: dict[str, Volume] = {}
    mounts, shown, mapping = [], [], {}
    for spec in params["mounts"]:
        parsed = parse_mount(spec)
        if parsed["type"] != "volume":
            mounts.append(spec)
            continue
        name = parsed["name"]
        old = by_name.get(name)
        if name not in rows:
            scope = {"team": team} if team is not None else {"team__isnull": True, "owner": owner}
            if Volume.objects.filter(host=host, name=name, **scope).exists():
                raise ServiceError("name_taken", f"a volume named {name} exists on host {host.name} already: "
                                                 "remove it or rename it there first", field="host")
            size = old.get("size") if old else None
            rows[name] = Volume.objects.create(name=name, host=host, owner=owner, team=team, size=size)
            if old is not None:
                mapping[old["engine_id"]] = rows[name].engine_id
        volume = rows[name]
        mounts.append(f"{volume.engine_id}:{parsed['destination']}" + (":ro" if parsed["read_only"] else ""))
        shown.append({"volume_id": volume.pk, "name": volume.name, "destination": parsed["destination"],
                      "read_only": parsed["read_only"], "engine_id": volume.engine_id, "size": volume.size})
    params["requested_mounts"] = list(params["mounts"])
    params["mounts"] = mounts
    params["volumes"] = shown
    return list(rows.values()), mapping


def send_container(user, source: Container, host: Any, *, copy: bool = False, name: str | None = None,
                   request=None, idempotency_key: str | None = None) -> tuple[Container, Job]:
    """Queue a move (or a copy) of `source` to `host`; returns the target's new row and the job."""
    from . import networks as services_networks

    kind = "container.copy" if copy else "container.move"
    _authorize(request, user, kind, source)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "container", str(source.pk))
        if earlier is not None:
            made = Container.objects.filter(pk=(earlier.params or {}).get("to_container") or 0).first()
            return made or source, earlier
        if source.state not in MOVABLE_STATES:
            raise ServiceError("conflict", f"cannot {kind.split('.')[1]} container {source.name}: it is "
                                           f"{source.state}")
        if Job.objects.filter(target_type="container", target_id=str(source.pk), kind__in=(
                "container.move", "container.copy"), state__in=(Job.State.QUEUED, Job.State.RUNNING)).exists():
            raise ServiceError("conflict", f"container {source.name} is being moved or copied already")
        target = _target_host(host, source)
        owner, team = (user, source.team) if copy else (source.owner, source.team)
        namespace = namespaces.for_container(owner, team.pk if team else None)
        new_name = (name or source.name).strip()
        if Container.objects.filter(host=target, namespace=namespace, name=new_name).exists():
            raise ServiceError("name_taken", f"the name {new_name} is already in use on host {target.name}",
                               field="host")
        params = _target_params(owner or user, source, target, namespace, team)
        planned_nets = services_networks.plan_networks(owner or user, target, namespace, params)
        try:
            with transaction.atomic():
                volumes, mapping = _plan_volumes(source, target, namespace, owner, team, params)
                nets = services_networks.attach_networks(owner or user, target, namespace, team, planned_nets,
                                                         params, new_name)
                params.update(name=new_name, image=source.image_ref, start=False)
                made = Container.objects.create(
                    name=new_name, namespace=namespace, host=target, image=None, image_ref=source.image_ref,
                    owner=owner, team=team, command=params.get("command") or [], config=params,
                    state=Container.State.CREATED, labels=params.get("labels") or {},
                    restart_policy=params.get("restart_policy") or "no",
                    status_message=f"being {'copied' if copy else 'moved'} from host {source.host.name}")
                made.volumes.set(volumes)
                made.networks.set(nets)
                job = _submit(request, user, kind, source.host, source,
                              {"to_host": target.pk, "to_container": made.pk, "volume_map": mapping,
                               "copy": copy}, key)
        except IntegrityError:
            raise ServiceError("name_taken", f"the name {new_name} is already in use on host {target.name}",
                               field="host") from None
        return made, job
    except ServiceError as exc:
        raise _refuse(request, user, kind, source, exc) from None
