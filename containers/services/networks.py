"""Network services (issue #13): create, remove, connect, disconnect, and the networks of a new container.

A network name lives in its owner's name space (a team's in the team's), as container names do; the host
knows it by its engine name (`u7.app`). A container joins networks of its own name space only: another
tenant's network is never found by name. A container asked for no network joins its name space's
`bridge` network (made on first use), so two tenants never share a default network as Docker's users do.
`host` networking and container:<name> outside one's own name space are refused; publishing a port below
1024 or on an address other than loopback is for superusers unless the admin setting
BERTH_PUBLISH_ANY_PORT allows everyone.

Same shape as the other services: permission check, validation naming the field, audit (refusals too),
and a Job; ServiceError is the one refusal.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from .. import namespaces, permissions
from ..models import Container, Host, Job, Network, Team
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

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,47}$")
DEFAULT = "bridge"
MODES = ("none", "host")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ServiceError("invalid", "a network name is required", field="name")
    name = name.strip()
    if not NAME_RE.match(name):
        raise ServiceError("invalid", f"invalid network name {name[:80]!r}: use letters, digits, '_', '.', '-' "
                                      "(starting with a letter or digit, at most 48)", field="name")
    if name in MODES or name == "default":
        raise ServiceError("invalid", f"'{name}' is a network mode, not a name you can give a network", field="name")
    return name


def _check_subnet(subnet: Any, gateway: Any) -> tuple[str, str]:
    if subnet in (None, ""):
        if gateway not in (None, ""):
            raise ServiceError("invalid", "a gateway needs a subnet", field="gateway")
        return "", ""
    try:
        net = ipaddress.ip_network(str(subnet), strict=True)
    except ValueError as exc:
        raise ServiceError("invalid", f"invalid subnet {str(subnet)[:50]!r}: {exc}", field="subnet") from None
    if net.version != 4 or not 8 <= net.prefixlen <= 29 or net.is_loopback or net.is_link_local:
        raise ServiceError("invalid", f"subnet {net}: use a private IPv4 subnet from /8 to /29", field="subnet")
    if gateway in (None, ""):
        return str(net), ""
    try:
        gw = ipaddress.ip_address(str(gateway))
    except ValueError:
        raise ServiceError("invalid", f"invalid gateway {str(gateway)[:50]!r}", field="gateway") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise ServiceError("invalid", f"gateway {gw} is not a host address of {net}", field="gateway")
    return str(net), str(gw)


def _labels(labels: Any) -> dict[str, str]:
    if labels in (None, ""):
        return {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) and k
                                               for k, v in labels.items()):
        raise ServiceError("invalid", "labels must be a mapping of non-empty strings to strings", field="labels")
    return dict(labels)


def network_params(net: Network) -> dict[str, Any]:
    """What the host needs to make the network (by its engine name), idempotently."""
    return {"engine_name": net.engine_name, "name": net.name, "subnet": net.subnet or None,
            "gateway": net.gateway or None, "internal": net.internal, "labels": net.labels}


def create_network(user, *, host: Host | int | str, name: str, team: Team | int | None = None,
                   subnet: str | None = None, gateway: str | None = None, internal: Any = False,
                   labels: dict[str, str] | None = None, request=None,
                   idempotency_key: str | None = None) -> tuple[Network | None, Job]:
    action = "network.create"
    shown = name if isinstance(name, str) else ""
    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, action)
        if earlier is not None:
            return Network.objects.filter(pk=earlier.target_id or 0).first(), earlier
        host = _as_host(host)
        team_row = _as_team(user, team)
        name = _check_name(name)
        subnet, gateway = _check_subnet(subnet, gateway)
        internal = _bool(internal, "internal")
        labels = _labels(labels)
        namespace = namespaces.for_container(user, team_row.pk if team_row else None)
        taken = ServiceError("name_taken", f"a network named {name} already exists on host {host.name}",
                             field="name")
        if Network.objects.filter(host=host, namespace=namespace, name=name).exists():
            raise taken
        try:
            with transaction.atomic():
                net = Network.objects.create(name=name, namespace=namespace, host=host, owner=user, team=team_row,
                                             subnet=subnet, gateway=gateway, internal=internal, labels=labels)
                job = _submit(request, user, action, host, net, network_params(net), key)
        except IntegrityError:
            raise taken from None
        return net, job
    except ServiceError as exc:
        _refuse(request, user, action, ("network", "", shown[:100]), exc)
        raise


def remove_network(user, net: Network, *, force: Any = False, request=None,
                   idempotency_key: str | None = None) -> Job:
    """Queue network.remove; refused while containers are on it unless `force` (they are disconnected)."""
    kind = "network.remove"
    _authorize(request, user, kind, net)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "network", str(net.pk))
        if earlier is not None:
            return earlier
        force = _bool(force, "force")
        if net.state == Network.State.REMOVING:
            raise ServiceError("conflict", f"network {net.name} is being removed already", field="network")
        using = [c for c in net.containers.all() if c.state != Container.State.REMOVING]
        if using and not force:
            names = ", ".join(c.name for c in using[:5])
            raise ServiceError("network_in_use", f"network {net.name} is in use by {names}: disconnect them or "
                                                 "remove it with force", field="network", status=409)
    except ServiceError as exc:
        raise _refuse(request, user, kind, net, exc) from None
    with transaction.atomic():
        Network.objects.filter(pk=net.pk).update(state=Network.State.REMOVING)
        net.state = Network.State.REMOVING
        return _submit(request, user, kind, net.host, net, {**network_params(net), "force": force}, key)


def _connect_target(request, user, kind: str, net: Network, container: Container) -> None:
    _authorize(request, user, kind, net, kind)
    _authorize(request, user, "container.start", container, kind)
    if container.host_id != net.host_id or container.namespace != net.namespace:
        raise _refuse(request, user, kind, net, ServiceError(
            "invalid", f"container {container.name} cannot join network {net.name}: both must belong to the same "
                       "owner (or team) on the same host", field="container"))
    if net.state == Network.State.REMOVING:
        raise _refuse(request, user, kind, net, ServiceError("conflict", f"network {net.name} is being removed",
                                                             field="network"))


def connect(user, net: Network, container: Container, *, aliases: list[str] | None = None, request=None) -> Job:
    kind = "network.connect"
    _connect_target(request, user, kind, net, container)
    aliases = [a for a in (aliases or []) if isinstance(a, str)]
    if net.containers.filter(pk=container.pk).exists():
        raise _refuse(request, user, kind, net, ServiceError(
            "conflict", f"container {container.name} is already on network {net.name}", field="container"))
    with transaction.atomic():
        net.containers.add(container)
        return _submit(request, user, kind, net.host, net, {
            **network_params(net), "container": container.engine_id,
            "aliases": list(dict.fromkeys([container.name, *aliases]))}, None)


def disconnect(user, net: Network, container: Container, *, request=None) -> Job:
    kind = "network.disconnect"
    _connect_target(request, user, kind, net, container)
    if not net.containers.filter(pk=container.pk).exists():
        raise _refuse(request, user, kind, net, ServiceError(
            "conflict", f"container {container.name} is not on network {net.name}", field="container"))
    with transaction.atomic():
        net.containers.remove(container)
        return _submit(request, user, kind, net.host, net, {**network_params(net), "container": container.engine_id},
                       None)


# --- the networks of a new container -----------------------------------------------------------------

def _check_ports(user, ports: list[str]) -> None:
    from workers.engine.net.ports import parse

    if user.is_superuser or getattr(settings, "BERTH_PUBLISH_ANY_PORT", False):
        return
    for spec in ports:
        m = parse(spec)
        if m["host_port"] and m["host_port"] < 1024:
            raise ServiceError("forbidden", f"port {spec}: host ports below 1024 are for administrators "
                                            "(setting BERTH_PUBLISH_ANY_PORT)", field="ports")
        if not ipaddress.ip_address(m["host_ip"]).is_loopback:
            raise ServiceError("forbidden", f"port {spec}: publishing on {m['host_ip']} is for administrators; "
                                            "ports are published on 127.0.0.1 (setting BERTH_PUBLISH_ANY_PORT)",
                               field="ports")


def plan_networks(user, host: Host, namespace: str, params: dict[str, Any]) -> list[Network | str]:
    """Each network a container about to be made joins, looked up in its name space (a str: one to make,
    the name space's default). Changes nothing; refusals name the field `networks` (or `ports`)."""
    from workers.engine.net.errors import InvalidConfig

    try:
        _check_ports(user, params.get("ports") or [])
    except InvalidConfig as exc:
        raise ServiceError("invalid", str(exc), field="ports") from None
    asked = list(params.get("networks") or [])
    if not asked:
        found = Network.objects.filter(host=host, namespace=namespace, name=DEFAULT).first()
        return [found or DEFAULT]
    if asked == ["none"]:
        return []
    if "host" in asked and not user.is_superuser:
        raise ServiceError("forbidden", "host networking is for administrators", field="networks")
    if asked == ["host"]:
        return []
    out: list[Network | str] = []
    for name in asked:
        if name.startswith("container:"):
            other = Container.objects.filter(host=host, namespace=namespace, name=name.partition(":")[2]).first()
            if other is None or not permissions.can(user, "container.start", other):
                raise ServiceError("invalid", f"no container {name.partition(':')[2]!r} to share a network "
                                              "with", field="networks")
            out.append(f"container:{other.engine_name}")
            continue
        net = Network.objects.filter(host=host, namespace=namespace, name=name).first()
        if net is None and name == DEFAULT:
            out.append(DEFAULT)
            continue
        if net is None or not permissions.can(user, "network.use", net):
            raise ServiceError("invalid", f"no such network {name!r} on host {host.name}", field="networks")
        if net.state == Network.State.REMOVING:
            raise ServiceError("conflict", f"network {name} is being removed", field="networks")
        out.append(net)
    return out


def attach_networks(user, host: Host, namespace: str, team: Team | None, planned: list[Network | str],
                    params: dict[str, Any], container_name: str) -> list[Network]:
    """Inside the container's create transaction: make the name space's default network if it is needed,
    and point params at engine names. params["networks"] becomes what the host joins,
    params["requested_networks"] keeps what the user wrote, params["network_defs"] lets the host make any
    network not made yet (its network.create job may run after the container's)."""
    rows: list[Network] = []
    engine: list[str] = []
    for item in planned:
        if isinstance(item, str) and item.startswith("container:"):
            engine.append(item)
            continue
        if isinstance(item, str):
            item, _ = Network.objects.get_or_create(host=host, namespace=namespace, name=DEFAULT,
                                                    defaults={"owner": user, "team": team})
        rows.append(item)
        engine.append(item.engine_name)
    asked = list(params.get("networks") or [])
    params["requested_networks"] = asked
    if asked in (["none"], ["host"]):
        engine = asked
    params["networks"] = engine
    params["network_defs"] = [network_params(n) for n in rows]
    if rows:  # the user's own name for the container, on its networks' DNS
        params["network_aliases"] = list(dict.fromkeys([container_name, *(params.get("network_aliases") or [])]))
    return rows
