"""The container state reporter: the Container rows follow what the host's engine says, without anyone
asking. At worker start it reconciles (exits that happened while no worker ran get recorded; nothing
running is touched), then a daemon thread in the worker's main process calls `supervise()` about every
second (the engine notices exits and applies restart policies there) and writes each change onto the
row, with a container event. Rows of this host the engine does not know become "dead".
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from celery.signals import worker_shutdown
from django.db import close_old_connections

from containers.models import Container, Job
from workers.engine.containers import states
from workers.handlers import common, on_worker_start

log = logging.getLogger(__name__)

INTERVAL = 1.0
DEAD_CHECK_EVERY = 15  # passes between checks for rows the engine lost (they are rare: manual removal)
ENGINE_STATES = set(states.ALL)
# Rows whose job is making or removing them are not "unknown to the engine", only early or late.
BUSY_KINDS = ("container.create", "container.remove")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 with up to nanoseconds ("2026-11-29T01:35:37.123456789Z") as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    main, sep, rest = text.partition(".")
    if sep:
        n = len(rest) - len(rest.lstrip("0123456789"))
        digits, zone = rest[:n], rest[n:]
        text = f"{main}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def derive_message(row: Container, status: dict[str, Any]) -> str:
    """What a user should read about this change (the engine's own words first)."""
    state = status.get("state")
    said = str(status.get("status_message") or "")
    # A restart note is about the last start: once the container is down for good it says why instead.
    if said and not (state in ("exited", "dead") and said.startswith("restarted by policy")):
        return said
    count = int(status.get("restart_count") or 0)
    if count > row.restart_count and state == "running":
        policy = (status.get("restart_policy") or row.restart_policy).split(":")[0]
        return f"restarted by policy {policy} ({count})"
    if state in ("exited", "dead") and status.get("oom_killed"):
        return "OOM killed"
    if state == "exited" and status.get("exit_code") is not None:
        return f"exited with code {status['exit_code']}"
    if state in ("running", "created", "paused"):
        # A start after an exit clears the exit's words; a running container keeps e.g. its restart note.
        return "" if row.state in ("exited", "dead") else row.status_message
    return row.status_message


def row_changes(row: Container, status: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    """The Container fields that differ from the engine's status dict (nothing for unknown states)."""
    state = status.get("state")
    if state not in ENGINE_STATES:
        return {}
    want: dict[str, Any] = {
        "state": state,
        "exit_code": status.get("exit_code") if state in ("exited", "dead") else None,
        "oom_killed": bool(status.get("oom_killed")) if state in ("exited", "dead") else False,
        "restart_count": max(int(status.get("restart_count") or 0), 0),
        "status_message": (message if message is not None else derive_message(row, status))[:500],
    }
    if isinstance(status.get("network"), dict):
        want["network"] = status["network"]  # addresses and published ports, shown on the container page
    started = parse_time(status.get("started_at"))
    finished = parse_time(status.get("finished_at"))
    if started is not None:
        want["started"] = started
    if finished is not None or state in ("running", "paused"):
        want["finished"] = finished if state not in ("running", "paused") else None
    return {k: v for k, v in want.items() if getattr(row, k) != v}


def save_status(row: Container, status: dict[str, Any], message: str | None = None) -> bool:
    """Write the engine's status onto the row (only the fields it changes) and publish an event."""
    changes = row_changes(row, status, message)
    if not changes:
        return False
    updated = Container.objects.filter(pk=row.pk).exclude(state=Container.State.REMOVING).update(**changes)
    if not updated:
        return False
    for key, value in changes.items():
        setattr(row, key, value)
    common.publish_container(row, pid=status.get("pid"))
    return True


def mark_dead(row: Container, message: str) -> None:
    changes = {"state": Container.State.DEAD, "status_message": message[:500]}
    if Container.objects.filter(pk=row.pk).update(**changes):
        for key, value in changes.items():
            setattr(row, key, value)
        common.publish_container(row)


def _busy_rows(host) -> set[str]:
    busy = Job.objects.filter(host=host, kind__in=BUSY_KINDS, target_type="container",
                              state__in=(Job.State.QUEUED, Job.State.RUNNING)).values_list("target_id", flat=True)
    return set(busy)


def mark_unknown_dead(host, known_ids: set[str]) -> list[int]:
    """Rows of `host` whose container the engine does not have (and no job is making or removing)."""
    live = Container.objects.filter(host=host).exclude(state__in=(Container.State.DEAD, Container.State.REMOVING))
    # (pk, engine_id) pairs first: a whole row per container (a thousand models every pass) was most of what an
    # idle agent spent; the rows to mark are rare and loaded alone
    lost = [pk for pk, engine_id in live.values_list("pk", "engine_id") if engine_id not in known_ids]
    if not lost:
        return []
    busy = _busy_rows(host)
    marked = []
    for row in live.select_related("host").filter(pk__in=[pk for pk in lost if str(pk) not in busy]):
        mark_dead(row, f"the host {host.name} no longer has this container")
        marked.append(row.pk)
    return marked


def apply_changes(host, changes: list[dict[str, Any]]) -> int:
    """Map a list of engine status dicts onto this host's rows; returns how many rows changed."""
    if not changes:
        return 0
    by_id = {c.get("id"): c for c in changes if c.get("id")}
    rows = Container.objects.select_related("host").filter(host=host, engine_id__in=list(by_id))
    n = 0
    for row in rows:
        n += save_status(row, by_id[row.engine_id])
    return n


class Reporter(threading.Thread):
    """Daemon thread of the worker's main process: supervise, map changes, repeat."""

    def __init__(self, host, manager, interval: float = INTERVAL) -> None:
        super().__init__(name="berth-container-reporter", daemon=True)
        self.host = host
        self.manager = manager
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        passes = 0
        while not self.stopping.wait(self.interval):
            passes += 1
            try:
                close_old_connections()
                apply_changes(self.host, self.manager.supervise())
                if passes % DEAD_CHECK_EVERY == 0:
                    # ids only: list() would ask the runtime about every container (25 % of a CPU at 300)
                    mark_unknown_dead(self.host, self.manager.known_ids())
            except Exception:
                log.exception("container reporter of host %s: pass failed", self.host.name)

    def stop(self) -> None:
        self.stopping.set()


_reporter: Reporter | None = None


@on_worker_start
def start_reporter(host) -> None:
    """Reconcile this host's containers with their rows, then keep them in step."""
    global _reporter
    try:
        manager = common.container_manager()
    except ImportError:
        log.warning("host %s: no container engine in this build; container reporter not started", host.name)
        return
    changes = manager.reconcile()
    n = apply_changes(host, changes)
    dead = mark_unknown_dead(host, {c["id"] for c in manager.list(all=True)})
    log.info("host %s: reconciled %d container(s), %d row(s) updated, %d marked dead",
             host.name, len(changes), n, len(dead))
    if _reporter is None or not _reporter.is_alive():
        _reporter = Reporter(host, manager)
        _reporter.start()


@worker_shutdown.connect
def _stop_reporter(sender=None, **kwargs) -> None:
    """A warm shutdown ends the reporter between passes (the containers keep running)."""
    if _reporter is not None:
        _reporter.stop()
        _reporter.join(timeout=5)
