"""Helpers shared by the container, image and reporter handlers: this host's engine objects, export
files, job targets, byte progress, and the Image rows that mirror the host's image store."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from containers import events, namespaces
from containers.models import Container, Host, Image, Team
from workers.engine.images import ImageStore, refs
from workers.engine.images.store import Image as EngineImage

TAR_TYPE = "application/x-tar"
TEXT_TYPE = "text/plain; charset=utf-8"

_lock = threading.Lock()
_stores: dict[str, ImageStore] = {}
_managers: dict[str, Any] = {}


def state_root() -> Path:
    return Path(settings.BERTH_STATE_ROOT)


def image_store() -> ImageStore:
    """The image store of the host this worker serves (one object per state root and process)."""
    key = str(state_root())
    with _lock:
        if key not in _stores:
            _stores[key] = ImageStore(key)
        return _stores[key]


def container_manager():
    """The host's ContainerManager; it starts the monitor with the Redis log sink pointed at REDIS_URL."""
    from workers.engine.containers import ContainerManager

    # Per process: a pool process forked later must not share the main process's instance, whose
    # supervise() remembers what it reported.
    key = f"{os.getpid()}:{state_root()}"
    with _lock:
        if key not in _managers:
            _managers[key] = ContainerManager(state_root(), log_redis_url=settings.REDIS_URL)
        return _managers[key]


def safe_filename(text: str) -> str:
    """A download name from a container or image name (no path separators, no quotes)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("._")
    return cleaned or "download"


def remove_quietly(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# --- job targets -------------------------------------------------------------------------------------

def target_container(job) -> Container:
    """The Container row a job targets, on the job's host."""
    from workers.tasks import JobError

    c = Container.objects.select_related("host", "image").filter(pk=_target_pk(job), host=job.host).first()
    if c is None:
        raise JobError(f"container #{job.target_id} no longer exists on host {job.host.name}")
    return c


def target_image(job) -> Image:
    from workers.tasks import JobError

    img = Image.objects.select_related("host").filter(pk=_target_pk(job), host=job.host).first()
    if img is None:
        raise JobError(f"image #{job.target_id} no longer exists on host {job.host.name}")
    return img


def gone_after_earlier_attempt(job, model) -> bool:
    """A re-run (an earlier attempt's worker died) of a removal whose target row is gone: that attempt finished
    the removal, whose last step deletes the row. A first attempt never counts: its missing target is an error."""
    return job.attempts > 1 and not model.objects.filter(pk=_target_pk(job), host=job.host).exists()


def _target_pk(job) -> int:
    from workers.tasks import JobError

    try:
        return int(job.target_id)
    except (TypeError, ValueError):
        raise JobError(f"job #{job.pk} has no valid target (got {job.target_type!r} {job.target_id!r})") from None


# --- progress ----------------------------------------------------------------------------------------

def byte_progress(report: Callable[..., None], start: int, end: int, verb: str,
                  total: int | None = None, min_interval: float = 0.3) -> Callable[[int, int | None], None]:
    """A `progress(done_bytes, total_bytes)` callback for the engine that maps bytes onto job progress
    between `start` and `end` percent. Calls are throttled: every report writes the Job row and an event."""
    state = {"last": -1, "at": 0.0}

    def progress(done: int, total_now: int | None = None) -> None:
        whole = total_now or total
        now = time.monotonic()
        if whole:
            pct = start + int((end - start) * min(done, whole) / whole)
        else:
            pct = start
        if pct == state["last"] and now - state["at"] < 2.0:
            return
        if now - state["at"] < min_interval and pct < end:
            return
        state["last"], state["at"] = pct, now
        mib = done / 1048576
        text = f"{verb} {mib:.1f} MiB" + (f" of {whole / 1048576:.1f} MiB" if whole else "")
        report(pct, text)

    return progress


# --- Image rows --------------------------------------------------------------------------------------

def job_owner(job):
    """Who asked for the job (None for jobs the system made): the owner of the images it makes."""
    return job.requested_by if job.requested_by_id else None


def job_team(job) -> Team | None:
    """The team named by params.team_id, refused when it does not exist; None when none was named."""
    from workers.tasks import JobError

    team_id = job.params.get("team_id")
    if team_id in (None, ""):
        return None
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise JobError(f"team #{team_id} does not exist")
    return team


def split_ref(ref: str) -> tuple[str, str]:
    """("name", "tag") of a `name[:tag]` reference, as the Image rows keep it."""
    name, _, tag = refs.tag_of(ref).rpartition(":")
    return name, tag


def job_namespace(job, team: Team | None) -> str:
    """The name space the images a job makes go to (containers/namespaces.py)."""
    return namespaces.for_image(job_owner(job), team.pk if team is not None else None)


def describe_namespace(namespace: str) -> str:
    """ "your name space", "team <name>'s name space" or "the system name space", for job errors."""
    user_id, team_id = namespaces.owner_ids(namespace)
    if team_id is not None:
        team = Team.objects.filter(pk=team_id).values_list("name", flat=True).first()
        return f"team {team or team_id}'s name space"
    return "your name space" if user_id is not None else "the system name space"


def new_engine_ref(host: Host, namespace: str, ref: str) -> str:
    """The engine ref a new image `ref` gets in `namespace`, refused (JobError) when the name space has
    that name already: nothing is ever replaced by import, load, commit or tag."""
    from workers.tasks import JobError

    name, tag = split_ref(ref)
    try:
        engine_ref = namespaces.check_new_ref(namespace, name, tag)
    except namespaces.NameError_ as exc:
        raise JobError(str(exc)) from None
    if Image.objects.filter(host=host, namespace=namespace, name=name, tag=tag).exists():
        raise JobError(taken_message(host, namespace, f"{name}:{tag}"))
    return engine_ref


def earlier_attempt_image(job, namespace: str, ref: str, *, owner, team: Team | None,
                          shared: bool = False) -> Image | None:
    """On a re-run (the worker died during an earlier attempt), the image `ref` that attempt made, its row brought
    in line with the store; None on a first attempt or when the name is not that attempt's (the caller then
    refuses it as taken). The store has the name in the job's name space, and its row is missing (the attempt
    died between the store and the database) or was made after the job was asked for, for the same team and for who
    asked or nobody (the next worker's start gives a tag without a row a row of nobody's: images.sync_host_images)."""
    if job.attempts < 2:
        return None
    name, tag = split_ref(ref)
    try:
        engine_ref = namespaces.check_new_ref(namespace, name, tag)
    except namespaces.NameError_:
        return None
    store = image_store()
    if not store.exists(engine_ref):
        return None
    row = Image.objects.filter(host=job.host, namespace=namespace, name=name, tag=tag).first()
    if row is not None and (row.created < job.created or row.owner_id not in (None, getattr(owner, "pk", None))
                            or row.team_id != getattr(team, "pk", None)):
        return None
    return sync_image_row(job.host, f"{name}:{tag}", store.resolve(engine_ref), owner=owner, team=team,
                          shared=shared, namespace=namespace)


def taken_message(host: Host, namespace: str, ref: str) -> str:
    return (f"image {ref} already exists in {describe_namespace(namespace)} on host {host.name}: choose "
            "another name or tag, or remove that image first")


def user_ref(engine_ref: str) -> str:
    """The user-facing `name:tag` of an engine ref."""
    _, name, tag = namespaces.split_engine_ref(engine_ref)
    return f"{name}:{tag}"


def image_fields(image: EngineImage) -> dict[str, Any]:
    return {"digest": image.digest, "size": image.size, "layers": image.diff_ids, "config": image.config}


def sync_image_row(host: Host, ref: str, image: EngineImage, *, owner=None, team=None,
                   shared: bool | None = None, keep_ownership: bool = False, namespace: str = "") -> Image:
    """The one Image row of (host, namespace, name, tag) made to describe `image`; created if missing.
    `ref` is the user-facing `name:tag`.

    With `keep_ownership` an existing row keeps its owner/team/shared (e.g. a re-seeded base image)."""
    name, tag = split_ref(ref)
    with transaction.atomic():
        rows = list(Image.objects.select_for_update().filter(host=host, namespace=namespace, name=name, tag=tag)
                    .order_by("pk"))
        row = rows[0] if rows else Image(host=host, namespace=namespace, name=name, tag=tag)
        for extra in rows[1:]:  # one row per (host, name, tag): a duplicate from a race goes
            extra.delete()
        wanted = image_fields(image)
        if row.pk is None or not keep_ownership:
            wanted.update(owner_id=owner.pk if owner is not None else None,
                          team_id=team.pk if team is not None else None, shared=bool(shared))
        if row.pk is not None and not rows[1:] and all(getattr(row, k) == v for k, v in wanted.items()):
            return row  # nothing to say
        for key, value in wanted.items():
            setattr(row, key, value)
        row.save()
    publish_image(row, "present")
    return row


def image_event(row: Image, state: str) -> dict[str, Any]:
    return {"type": "image", "id": row.pk, "state": state, "name": row.name, "tag": row.tag,
            "digest": row.digest, "size": row.size, "host": row.host.name, "owner_id": row.owner_id,
            "team_id": row.team_id, "shared": row.shared}


def publish_image(row: Image, state: str) -> None:
    events.publish(image_event(row, state))


# --- container events --------------------------------------------------------------------------------

def publish_container(row: Container, **extra: Any) -> None:
    """The container event plus the fields the reporter keeps (restart count, status message)."""
    event = events.container_event(row)
    event.update({"restart_count": row.restart_count, "status_message": row.status_message,
                  "restart_policy": row.restart_policy, "image_ref": row.image_ref})
    event.update(extra)
    events.publish(event)
