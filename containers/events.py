"""Live events: job/container/host changes sent to one Channels group, filtered per user on delivery.

Events are JSON dicts: {"type": "job"|"container"|"host", "id": ..., ...fields}; user-facing objects
carry "owner_id". `publish` is synchronous and works from web and worker processes alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

GROUP = "berth.events"


_sender: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, loop): a fork gets its own
_sender_lock = threading.Lock()
SEND_TIMEOUT = 10.0


def _sending_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for synchronous publishers, run by a thread of its own. async_to_sync made a
    thread, a loop and a Redis connection for every event (2.1 ms each; a create job sends about five); on
    one loop, channels_redis keeps its connections."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="berth-events", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def publish(event: dict[str, Any]) -> None:
    """Send one event to every connected dashboard; never raises (events are best effort)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "berth.event", "event": event}
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: the usual case (a worker's job, a sync view's thread)
            asyncio.run_coroutine_threadsafe(layer.group_send(GROUP, message), _sending_loop()).result(SEND_TIMEOUT)
        else:
            async_to_sync(layer.group_send)(GROUP, message)  # refuses, as before: async code awaits group_send
    except Exception:  # a dead Redis must not fail the job that reports
        log.warning("could not publish event %s %s", event.get("type"), event.get("id"), exc_info=True)


def visible_to(user, event: dict[str, Any]) -> bool:
    """Whether `user` may receive `event`: the rules live in containers/permissions.py (teams, roles)."""
    from .permissions import event_visible

    return event_visible(user, event)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def job_event(job) -> dict[str, Any]:
    from .offline import job_message

    return {
        "type": "job",
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress,
        "message": job_message(job),  # a job waiting for an offline host says so
        "error": job.error,
        "error_code": job.error_code,
        "error_field": job.error_field,  # the container spec field a host's refusal is about
        "result": job.result,
        "attempts": job.attempts,
        "host": job.host.name,
        "target_type": job.target_type,
        "target_id": job.target_id,
        "owner_id": job.requested_by_id,
        "created": _iso(job.created),
        "started": _iso(job.started),
        "finished": _iso(job.finished),
    }


def container_event(container) -> dict[str, Any]:
    return {
        "type": "container",
        "id": container.pk,
        "engine_id": container.engine_id,
        "name": container.name,
        "state": container.shown_state,  # "unknown" while its host is offline
        "last_known_state": container.state,
        "exit_code": container.exit_code,
        "oom_killed": container.oom_killed,
        "host": container.host.name,
        "owner_id": container.owner_id,
        "team_id": container.team_id,
        "started": _iso(container.started),
        "finished": _iso(container.finished),
        "restart_count": container.restart_count,
    }


def host_event(host) -> dict[str, Any]:
    return {
        "type": "host",
        "id": host.pk,
        "name": host.name,
        "online": host.online,
        "last_heartbeat": _iso(host.last_heartbeat),
        "kernel": host.kernel,
        "cgroup_version": host.cgroup_version,
        "cpus": host.cpus,
        "memory_bytes": host.memory_bytes,
        "runtimes": host.runtimes,
        "labels": host.labels,
        "cordoned": host.cordoned,
        "draining": host.draining,
    }


def publish_job(job) -> None:
    publish(job_event(job))


def publish_container(container) -> None:
    publish(container_event(container))


def publish_host(host) -> None:
    publish(host_event(host))
