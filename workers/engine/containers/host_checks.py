"""Checks of a container spec that depend on the host it is made on (the spec's own checks are pure).
Refusals name the spec field, like the spec's, so they reach the user's input the same way."""

from __future__ import annotations

import os

from .config import parse_mount
from .errors import InvalidConfig
from .spec import ContainerSpec


def check_on_host(spec: ContainerSpec, *, cpu_count: int | None = None) -> None:
    """CPUs within this host's; bind sources that exist here (a confined source is checked again without
    following links when the bundle is made)."""
    ncpu = cpu_count or os.cpu_count() or 1
    if spec.cpus is not None and spec.cpus > ncpu:
        raise InvalidConfig("cpus", f"cpus {spec.cpus:g} is out of range: use a value from 0.01 to {ncpu} "
                                    "(the CPUs of this host)")
    for m in map(parse_mount, spec.mounts):
        if m["type"] == "bind" and not os.path.exists(m["source"]):
            raise InvalidConfig("mounts", f"bind mount source {m['source']} does not exist on this host")
