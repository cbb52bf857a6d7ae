"""The target host's half of a move or copy (issue 18; the chain is in workers/handlers/move.py).

`host.blobs` answers which image blobs this host has; `container.receive` turns the pack the source streams
through the control plane into the container here. A receive reads the pack straight from the control
plane's response (no local copy: the pack carries its own digests and its end, so a short stream fails it).

Worker deaths. The source gives a receive up when this host goes offline (its heartbeat stops), by failing
the job with ABANDONED; a receive that is still running (a live host whose heartbeat was late) sees that at
its point of no return (`_commit`, before it starts the container or reports it made) and removes what it
made. A receive whose worker was killed before that point leaves a half-made container here: the next
worker start removes it (`clear_abandoned`), so the container never runs on two hosts. Past the point of no
return the source no longer gives up: it waits for this host to come back and finish. A receive whose worker
died on every attempt ends failed, and the source gives back: move_settle.py removes what it made here."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from containers.models import Container, Job, Volume
from containers.transfer_model import Transfer
from workers import agent, transfer
from workers.engine.containers import errors
from workers.engine.images import ImageError
from workers.handlers import common, handler, on_worker_start, reporter

log = logging.getLogger(__name__)

ABANDONED = "move_abandoned"  # error code of a receive (or blob list) the source gave up on
COMMITTED = 95  # a receive's progress once past its point of no return: the source no longer gives it up


def job_error(message: str, code: str | None = None, field: str | None = None):
    from workers.tasks import JobError

    return JobError(message, code=code, field=field)


@handler("host.blobs")
def host_blobs(job, report) -> dict[str, Any]:
    """The image blobs this host's store holds (a move leaves them out of its pack)."""
    from workers.engine.containers.move_pack import have_blobs

    return {"blobs": have_blobs(common.image_store())}


def _remove_made(engine_id: str, volume_ids: list[str]) -> None:
    """This host's engine without the container and the volumes a receive made (rows untouched)."""
    from workers.engine.containers import volumes

    try:
        common.container_manager().remove(engine_id, force=True)
    except errors.NoSuchContainer:
        pass
    except Exception:
        log.exception("container %s: what a receive made could not be removed", engine_id[:12])
    for vid in volume_ids:
        try:
            volumes.remove(common.state_root(), vid, force=True)
        except volumes.NoSuchVolume:
            pass
        except Exception:
            log.exception("volume %s: made by a receive, could not be removed", vid[:12])


def _cleanup_target(row: Container, made_volumes: list[str]) -> None:
    """Nothing of a failed receive stays: the container, the volumes it made, their rows."""
    _remove_made(row.engine_id, made_volumes)
    Volume.objects.filter(containers=row).delete()
    Volume.objects.filter(engine_id__in=made_volumes).delete()
    pk = row.pk
    Container.objects.filter(pk=pk).delete()
    row.pk, row.state = pk, "removed"
    common.publish_container(row)


def _commit(job) -> bool:
    """The point of no return: mark this receive committed unless the source gave it up meanwhile (one
    conditional update, against the source's conditional failure of the same row)."""
    if not Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, worker=agent.process_token(),
                              progress__lt=COMMITTED).update(progress=COMMITTED, message="received"):
        return False
    job.progress = COMMITTED
    return True


def _given_up(job, row: Container, made_volumes: list[str]):
    _cleanup_target(row, made_volumes)
    return job_error(f"the source gave this {'copy' if job.params.get('copy') else 'move'} up; "
                     f"nothing of it stays on host {job.host.name}", ABANDONED)


@handler("container.receive")
def receive(job, report) -> dict[str, Any]:
    """Step 3: the pack (streamed from the control plane) becomes the container on this host."""
    from workers.engine.containers import move_pack, volumes
    from workers.handlers.containers import create_kwargs
    from workers.handlers.networks import ensure_networks

    row = common.target_container(job)
    params = dict(row.config or {})
    mgr = common.container_manager()
    store = common.image_store()
    root = common.state_root()
    mapping = dict(job.params.get("volume_map") or {})
    with contextlib.suppress(errors.NoSuchContainer):  # a re-run after the worker died past the create
        info = mgr.inspect(row.engine_id)
        if not Transfer.objects.filter(job=job).exists():
            # The pack was used up: the container is whole (the first run committed before it consumed it).
            return _started(job, report, row, info)
        mgr.remove(row.engine_id, force=True)  # half made: start again from the pack
        for vid in mapping.values():
            with contextlib.suppress(volumes.VolumeError):
                volumes.remove(root, vid, force=True)
    made_volumes: list[str] = []
    by_id = {v["engine_id"]: v for v in params.get("volumes") or []}

    def volume_dir(source_id: str):
        target_id = mapping.get(source_id)
        if target_id not in by_id:
            raise move_pack.PackError(f"the pack has a volume this container does not mount ({source_id[:12]})")
        v = by_id[target_id]
        volumes.create(root, v["name"], id=target_id, size=int(v["size"]) if v.get("size") else None)
        made_volumes.append(target_id)
        return volumes.data_dir(root, target_id)

    def on_image(manifest: str, ref: str):
        tag = move_pack.tag_image(store, manifest, ref)
        report(60, f"creating {row.name}" + (f" from {ref}" if tag else f" from {manifest[7:19]}"))
        for v in params.get("volumes") or []:  # volumes the pack has no data for (none on the source)
            if not volumes.data_dir(root, v["engine_id"]).exists():
                volumes.create(root, v["name"], id=v["engine_id"], size=int(v["size"]) if v.get("size") else None)
                made_volumes.append(v["engine_id"])
        ensure_networks(params)
        mgr.create(tag or manifest, **create_kwargs(params, row))
        return mgr.rootfs(row.engine_id)["upperdir"]

    report(5, "receiving the pack")
    began = time.monotonic()
    warm = _warm_monitor(mgr) if job.params.get("start") else None
    try:
        with transfer.streamed_upload(job) as pack:
            report(30, "unpacking as it arrives")
            got = move_pack.read_pack(store, pack, volume_dir=volume_dir, on_image=on_image)
        _link_image(row, job, got["manifest"])
        info = mgr.inspect(row.engine_id)
    except Exception as exc:
        _cleanup_target(row, made_volumes)
        transfer.consume_upload(job)
        if isinstance(exc, (errors.ContainerError, ImageError, volumes.VolumeError)):
            raise job_error(f"host {job.host.name} refused the container: {exc}", getattr(exc, "code", None),
                            getattr(exc, "field", None)) from None
        raise
    finally:
        if warm is not None:
            warm.join()  # done long before (a spawn takes 0.1 s): nothing of this job outlives it
    unpacked = time.monotonic()
    if not _commit(job):
        raise _given_up(job, row, made_volumes)
    consumed = transfer.consuming(job)  # the control plane drops the pack while the container starts
    try:
        out = _started(job, report, row, info)
    finally:
        consumed()
    # Where the receive's time went (bench/move.py prints it): the pack read and unpacked as it arrived (with
    # the container's create), then the start.
    seconds = {"pack": round(unpacked - began, 3), "start": round(time.monotonic() - unpacked, 3)}
    return {**out, "digests": got["digests"], "seconds": seconds}


def _warm_monitor(mgr) -> threading.Thread:
    """The monitor spawned by a thread while the pack streams in; a failure there is the start's to report."""
    def warm() -> None:
        try:
            mgr.ensure_monitor()
        except Exception:  # noqa: BLE001 - the start tries again and says why
            log.debug("the monitor could not be started ahead of the receive's start", exc_info=True)

    thread = threading.Thread(target=warm, name="warm-monitor", daemon=True)
    thread.start()
    return thread


def _started(job, report, row: Container, info: dict[str, Any]) -> dict[str, Any]:
    if job.progress < COMMITTED and not _commit(job):  # the adopting re-run: same rule
        raise _given_up(job, row, [v["engine_id"] for v in (row.config or {}).get("volumes") or []])
    mgr = common.container_manager()
    Container.objects.filter(pk=row.pk).update(status_message="")
    row.status_message = ""
    reporter.save_status(row, info)
    if job.params.get("start") and info.get("state") == "created":
        report(COMMITTED + 1, f"starting {row.name}")
        try:
            info = mgr.start(row.engine_id)
        except errors.ContainerError as exc:
            _cleanup_target(row, [v["engine_id"] for v in (row.config or {}).get("volumes") or []])
            raise job_error(f"host {job.host.name} could not start the container: {exc}",
                            getattr(exc, "code", None), getattr(exc, "field", None)) from None
        reporter.save_status(row, info)
    return {"container_id": row.pk, "engine_id": row.engine_id, "state": info.get("state")}


def _link_image(row: Container, job, manifest: str) -> None:
    """The target's Image row of the received image, as the source's row (owner, team, sharing, name space)."""
    source = Container.objects.filter(pk=job.params.get("from_container") or 0).select_related("image").first()
    image = source.image if source is not None else None
    store = common.image_store()
    if image is None or not store.exists(image.engine_ref) or store.resolve(image.engine_ref).digest != manifest:
        return  # untagged here (its name is another image's): the container keeps its image_ref only
    made = common.sync_image_row(row.host, f"{image.name}:{image.tag}", store.resolve(image.engine_ref),
                                 owner=image.owner, team=image.team, shared=image.shared, namespace=image.namespace,
                                 keep_ownership=True)
    Container.objects.filter(pk=row.pk).update(image=made)
    row.image = made


@on_worker_start
def clear_abandoned(host) -> list[int]:
    """What receives the source gave up on left on this host's engine while its worker was dead (a container
    made but not started, its volumes): removed, once. Returns the ids of the receive jobs cleared."""
    cleared = []
    for job in Job.objects.filter(host=host, kind="container.receive", state=Job.State.FAILED,
                                  error_code=ABANDONED).only("id", "params", "result"):
        if (job.result or {}).get("cleared") or not job.params.get("engine_id"):
            continue
        if Container.objects.filter(engine_id=job.params["engine_id"]).exists():
            continue  # a row owns it again (never: engine ids are unique), leave it
        _remove_made(job.params["engine_id"], list(job.params.get("volume_ids") or []))
        Job.objects.filter(pk=job.pk).update(result={**(job.result or {}), "cleared": True})
        cleared.append(job.pk)
    if cleared:
        log.info("host %s: removed what %d abandoned receive(s) left: jobs %s", host.name, len(cleared), cleared)
    return cleared
