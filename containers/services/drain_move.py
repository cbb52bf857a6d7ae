"""Drain that moves (issue 18): once a host is drained (cordoned), each container still on it is moved to the
least loaded online, uncordoned other host, one move job each (services/move.py). A container that cannot be
moved (a name taken there, a network missing there, a move already running) stays, with the reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..models import Container, Host
from .common import ServiceError
from .hosts import still_on
from .move import send_container
from .placement import _cpus


def _least_loaded(source: Host) -> Host | None:
    running = Counter(Container.objects.filter(state=Container.State.RUNNING).values_list("host_id", flat=True))
    hosts = [h for h in Host.objects.exclude(pk=source.pk).order_by("name") if h.online and not h.cordoned]
    return min(hosts, key=lambda h: (running[h.pk] / _cpus(h), h.name)) if hosts else None


def move_off(user, host: Host, *, request=None) -> list[dict[str, Any]]:
    """Queue a move for each container on the drained `host`; what happened to each, in name order."""
    out = []
    for container in still_on(host):
        target = _least_loaded(host)
        if target is None:
            out.append({"id": container.pk, "name": container.name, "error": "no online, uncordoned host to move to"})
            continue
        try:
            made, job = send_container(user, container, target, request=request)
        except ServiceError as exc:
            out.append({"id": container.pk, "name": container.name, "error": exc.message})
            continue
        out.append({"id": container.pk, "name": container.name, "host": target.name, "job": job.pk})
    return out
