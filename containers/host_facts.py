"""What the web side knows of a host comes from its heartbeat (workers/agent.py host_facts), never from the web
machine: its CPUs, memory, runtimes, cgroup version and the dirs its admin lets non-superusers bind-mount.
Checks that need more than these facts (does a bind source exist, is it a link out) are made on the host and
come back as a job error placed at the field."""

from __future__ import annotations

import os

from .models import Host


def bind_roots(host: Host) -> list[str]:
    """The host's BERTH_BIND_MOUNT_ROOTS, as its worker reported them (none until it has)."""
    roots = (host.facts or {}).get("bind_roots") or []
    return [os.path.normpath(r) for r in roots if isinstance(r, str) and r.startswith("/")]


def memory_bytes(host: Host) -> int:
    value = host.memory_bytes or (host.facts or {}).get("memory_bytes") or 0
    return int(value) if isinstance(value, int) else 0
