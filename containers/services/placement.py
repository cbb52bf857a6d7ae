"""Placement (issue 18): the host a new container goes to when its creator names none.

Among online, uncordoned hosts whose labels match the ones asked for and that have the image (resolved exactly as
create_container resolves it on a named host), the least loaded wins. Load = containers running on the host divided
by its CPUs (1 if unknown); ties go to fewer containers, then to the name, so the same state gives the same host.
Every host considered is recorded with why it was chosen or left out."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import join
from ..models import Container, Host, Image
from .common import ServiceError
from .containers import _resolve_image


def parse_placement(value: Any) -> list[str]:
    """The labels a placement asks for, as given ("ssd", "zone=a"): each one checked as host labels are."""
    if value is None:
        return []
    if not isinstance(value, dict) or set(value) - {"labels"}:
        raise ServiceError("invalid", 'placement is an object like {"labels": ["ssd", "zone=a"]}', field="placement")
    labels = value.get("labels") or []
    if not isinstance(labels, list):
        raise ServiceError("invalid", "placement labels are a list of key or key=value", field="placement")
    try:
        join.parse_labels(labels)  # the grammar and the limit of host labels
    except join.LabelError as exc:
        raise ServiceError("invalid", f"placement labels: {exc}", field="placement") from None
    return [item.strip() for item in labels]


def _label_misses(host: Host, wanted: list[str]) -> list[str]:
    """The wanted labels `host` lacks: a bare key needs the key, k=v needs that value."""
    have = host.labels if isinstance(host.labels, dict) else {}
    misses = []
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in have or (eq and have[key] != value):
            misses.append(item)
    return misses


def _cpus(host: Host) -> int:
    facts_cpus = (host.facts or {}).get("cpus")
    cpus = host.cpus or (facts_cpus if isinstance(facts_cpus, int) and not isinstance(facts_cpus, bool) else 0)
    return cpus if cpus > 0 else 1  # a host that has not said: counted as one CPU


def choose_host(user, image: Image | str, namespace: str, labels: list[str]) -> tuple[Host, Image, dict[str, Any]]:
    """(the host, the image resolved there, the placement record) for a container from `image` that must match
    `labels`; ServiceError at `host` (no usable host) or `image` (usable hosts, none with the image)."""
    hosts = list(Host.objects.order_by("name"))
    running = Counter(Container.objects.filter(state=Container.State.RUNNING).values_list("host_id", flat=True))
    total = Counter(Container.objects.values_list("host_id", flat=True))
    considered: list[dict[str, Any]] = []
    candidates: list[tuple[float, int, str, Host, Image]] = []
    usable = 0  # hosts that pass online/cordon/labels: decides which field a refusal is about
    forbidden = False  # the image is there and seen, but this user may not run it: 403 as on a named host
    for host in hosts:
        why = None
        if not host.online:
            why = "offline"
        elif host.cordoned:
            why = "draining" if host.draining else "cordoned"
        elif misses := _label_misses(host, labels):
            why = "lacks label " + ", ".join(misses)
        if why is None:
            usable += 1
            try:
                image_row = _resolve_image(user, host, image, namespace)
            except ServiceError as exc:  # the same words as for a named host: "no image x on host h"
                why = exc.message
                forbidden = forbidden or exc.code == "forbidden"
        entry = {"host": host.name, "chosen": False, "load": None, "reason": why or ""}
        considered.append(entry)
        if why is None:
            load = running[host.pk] / _cpus(host)
            entry["load"] = round(load, 3)
            entry["reason"] = f"{running[host.pk]} running on {_cpus(host)} CPU(s)"
            candidates.append((load, total[host.pk], host.name, host, image_row))
    if not candidates:
        summary = "; ".join(f"{c['host']}: {c['reason']}" for c in considered) or "there are no hosts"
        asked = f" with labels {', '.join(labels)}" if labels else ""
        if forbidden:
            raise ServiceError("forbidden", f"you may not run containers from {_ref(image)} on any online "
                                            f"host{asked} ({summary})", field="image")
        if usable:
            raise ServiceError("no_such_image", f"no online host{asked} has image {_ref(image)} for you "
                                                f"({summary})", field="image")
        raise ServiceError("conflict", f"no online, uncordoned host{asked} to run on ({summary})", field="host")
    load, _, name, host, image_row = min(candidates, key=lambda c: c[:3])
    for entry in considered:
        entry["chosen"] = entry["host"] == name
    matching = f"{len(candidates)} matching host" + ("s" if len(candidates) != 1 else "")
    record = {"host": name, "labels": labels, "considered": considered,
              "reason": f"least loaded of {matching} ({round(load, 2):g} running per CPU)"}
    return host, image_row, record


def _ref(image: Image | str) -> str:
    return image.ref if isinstance(image, Image) else str(image)[:200]
