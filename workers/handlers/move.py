"""Move and copy a container between hosts (issue 18): a chain of per-host jobs, no shared disk, no SSH.

The user's job (`container.move` / `container.copy`) runs on the SOURCE host's worker and drives the chain;
the web side (containers/services/move.py) made the target's rows already:

  1. target `host.blobs`: which image blobs the target has (so only the missing ones travel);
  2. source: a move stops the container (its files and volumes then hold still; its ports are free for the
     target); a copy leaves it running. The pack (engine: containers/move_pack.py: the image's missing
     blobs, each named volume's data, the upper dir, digests of all) is written to a nameless local file
     and pushed to the control plane for
  3. target `container.receive` (queued before the push, sent after it): fetches the pack over HTTP as an
     upload, stores the blobs (checked against their digests), restores the volumes, creates the container
     under the same name with the same spec, unpacks the upper dir, checks every member's digest, and
     starts it if the source was running. On any failure it removes what it made (container, volumes,
     rows), so the target is as before;
  4. source: only once 3 succeeded, a move removes the container and its named volumes from the source.
     If 1 or 3 failed (or the target did not answer in BERTH_MOVE_TIMEOUT), the source is left as it was:
     a container the move stopped is started again.

The user's job shows the chain's progress and the failing step's error. Re-running a step is safe: each
checks what is done (a redelivered receive finds its container and adopts it; the pack's upload lives
until its job ends).

CRIU (live migration, a running process keeping its memory): not available here (looked for on 2026-12-04).
Debian's `criu` 3.17.1-2+deb12u2 (bookworm; no backports source is configured on this machine, so it is the
only one reachable) fails `criu check` on this kernel (6.18): "vdso: Failed to fill self vdso symtable", then
"Could not initialize kernel features detection", so neither dump nor restore can run. PyPI has no `criu`
or `pycriu`; what it has is `habemus-papadum-criu` (a wrapper that runs the system's criu; no binary in its
wheel) and `docker-with-criu` (a docker-py fork); npm has no CRIU (only unrelated `crius*`). So a running
container is stopped and started again: its files, volumes and spec move, its memory does not.
The place for a checkpoint is step 2 (`_checkpoint`, today a no-op returning None): a checkpoint image
dir would travel as one more pack member and step 3 would restore instead of start."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.conf import settings

from containers import jobs as job_dispatch
from containers.models import Container, Host, Job, Volume
from containers.transfer_model import Transfer
from workers import transfer
from workers.engine.containers import errors
from workers.engine.images import ImageError
from workers.handlers import common, handler, reporter

log = logging.getLogger(__name__)
POLL = 0.2


def _job_error(message: str, code: str | None = None, field: str | None = None):
    from workers.tasks import JobError

    return JobError(message, code=code, field=field)


def _timeout() -> float:
    return float(getattr(settings, "BERTH_MOVE_TIMEOUT", 3600))


# --- on the target ------------------------------------------------------------------------------------

@handler("host.blobs")
def host_blobs(job, report) -> dict[str, Any]:
    """The image blobs this host's store holds (a move leaves them out of its pack)."""
    from workers.engine.containers.move_pack import have_blobs

    return {"blobs": have_blobs(common.image_store())}


def _cleanup_target(row: Container, made_volumes: list[str]) -> None:
    """Nothing of a failed receive stays: the container, the volumes it made, their rows."""
    from workers.engine.containers import volumes

    with contextlib.suppress(Exception):
        common.container_manager().remove(row.engine_id, force=True)
    for vid in made_volumes:
        with contextlib.suppress(Exception):
            volumes.remove(common.state_root(), vid, force=True)
    Volume.objects.filter(containers=row).delete()
    Volume.objects.filter(engine_id__in=made_volumes).delete()
    pk = row.pk
    Container.objects.filter(pk=pk).delete()
    row.pk, row.state = pk, "removed"
    common.publish_container(row)


@handler("container.receive")
def receive(job, report) -> dict[str, Any]:
    """Step 3: the pack (fetched from the control plane) becomes the container on this host."""
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
        if not Transfer.objects.filter(job=job, kind=Transfer.Kind.UPLOAD).exists():
            return _started(job, report, row, info)  # the pack was used up: the container is whole
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
            volume_dir_made = volumes.data_dir(root, v["engine_id"])
            if not volume_dir_made.exists():
                volumes.create(root, v["name"], id=v["engine_id"], size=int(v["size"]) if v.get("size") else None)
                made_volumes.append(v["engine_id"])
        ensure_networks(params)
        mgr.create(tag or manifest, **create_kwargs(params, row))
        return mgr.rootfs(row.engine_id)["upperdir"]

    report(5, "receiving the pack")
    try:
        with transfer.fetched_upload(job) as pack:
            report(30, "unpacking")
            got = move_pack.read_pack(store, pack, volume_dir=volume_dir, on_image=on_image)
        _link_image(row, job, got["manifest"])
        info = mgr.inspect(row.engine_id)
    except Exception as exc:
        _cleanup_target(row, made_volumes)
        transfer.consume_upload(job)
        if isinstance(exc, (errors.ContainerError, ImageError, volumes.VolumeError)):
            raise _job_error(f"host {job.host.name} refused the container: {exc}", getattr(exc, "code", None),
                             getattr(exc, "field", None)) from None
        raise
    transfer.consume_upload(job)
    return {**_started(job, report, row, info), "digests": got["digests"]}


def _started(job, report, row: Container, info: dict[str, Any]) -> dict[str, Any]:
    mgr = common.container_manager()
    Container.objects.filter(pk=row.pk).update(status_message="")
    row.status_message = ""
    reporter.save_status(row, info)
    if job.params.get("start") and info.get("state") == "created":
        report(90, f"starting {row.name}")
        try:
            info = mgr.start(row.engine_id)
        except errors.ContainerError as exc:
            _cleanup_target(row, [v["engine_id"] for v in (row.config or {}).get("volumes") or []])
            raise _job_error(f"host {job.host.name} could not start the container: {exc}",
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


# --- on the source: the chain -----------------------------------------------------------------------

def _wait(child: Job, report, low: int, high: int, what: str) -> Job:
    """Wait for another host's job, mirroring its progress into [low, high]; a target that never answers
    (its worker gone) fails the chain after BERTH_MOVE_TIMEOUT, its queued job cancelled."""
    deadline = time.monotonic() + _timeout()
    last = None
    while True:
        child.refresh_from_db()
        if child.state in Job.FINISHED_STATES:
            return child
        seen = (child.state, child.progress, child.message)
        if seen != last:
            last = seen
            report(low + (high - low) * child.progress // 100, f"{what}: {child.message or child.state}")
        if time.monotonic() > deadline:
            job_dispatch.cancel(child)
            child.refresh_from_db()
            if child.state in Job.FINISHED_STATES:
                return child
            raise _job_error(f"host {child.host.name} did not finish {what} within {_timeout():g} s "
                             "(BERTH_MOVE_TIMEOUT): is its worker running?")
        time.sleep(POLL)


def _checkpoint(mgr, row: Container) -> None:
    """Where a CRIU checkpoint would be taken (see the module docstring): none is possible here."""
    return None


def _source_volumes(row: Container) -> dict[str, Any]:
    from workers.engine.containers import volumes

    root = common.state_root()
    return {v["engine_id"]: volumes.data_dir(root, v["engine_id"]) for v in (row.config or {}).get("volumes") or []}


def _drop_target_rows(to_row: Container | None) -> None:
    if to_row is None:
        return
    Volume.objects.filter(containers=to_row).delete()
    Container.objects.filter(pk=to_row.pk).delete()
    to_row.state = "removed"
    common.publish_container(to_row)


@handler("container.move")
def move(job, report) -> dict[str, Any]:
    return _send(job, report, copy=False)


@handler("container.copy")
def copy(job, report) -> dict[str, Any]:
    return _send(job, report, copy=True)


def _send(job, report, *, copy: bool) -> dict[str, Any]:
    from workers.engine.containers import move_pack

    row = common.target_container(job)
    to_row = Container.objects.filter(pk=job.params.get("to_container") or 0).first()
    target = Host.objects.filter(pk=job.params.get("to_host") or 0).first()
    if to_row is None or target is None:
        raise _job_error("the target container or host is gone: ask again")
    done = Job.objects.filter(kind="container.receive", target_type="container", target_id=str(to_row.pk),
                              state=Job.State.SUCCEEDED).first()
    if done is not None:  # a re-run after this worker died once the target had the container
        return _finish_source(job, report, row, to_row, done, copy)
    mgr = common.container_manager()
    verb = "copying" if copy else "moving"
    try:
        report(1, f"asking host {target.name} which image blobs it has")
        blobs = _wait(job_dispatch.submit("host.blobs", target, requested_by=job.requested_by, target=to_row),
                      report, 1, 5, f"host {target.name}")
        if blobs.state != Job.State.SUCCEEDED:
            raise _job_error(f"host {target.name} could not list its image blobs: {blobs.error or blobs.state}")
    except Exception:
        _drop_target_rows(to_row)
        raise
    info = mgr.inspect(row.engine_id)
    was_running = info.get("state") in ("running", "paused")
    stopped = False
    receive_job = None
    try:
        _checkpoint(mgr, row)
        if was_running and not copy:
            report(6, f"stopping {row.name} on {job.host.name}")
            reporter.save_status(row, mgr.stop(row.engine_id, timeout=int(job.params.get("timeout") or 10)))
            stopped = True
        rootfs = mgr.rootfs(row.engine_id)
        image_ref = row.image.engine_ref if row.image_id and row.image else ""
        receive_job = Job.objects.create(
            kind="container.receive", host=target, requested_by=job.requested_by, target_type="container",
            target_id=str(to_row.pk), params={"start": was_running, "volume_map": job.params.get("volume_map") or {},
                                              "from_container": row.pk, "chain": job.pk})
        with transfer.local_file() as out:
            report(8, f"{verb} {row.name}: packing what host {target.name} lacks")
            sent = move_pack.write_pack(common.image_store(), rootfs["manifest"], image_ref, out,
                                        have=blobs.result.get("blobs") or [], upper=rootfs["upperdir"],
                                        volumes=_source_volumes(row), progress=lambda m: report(20, m))
            report(40, f"sending {out.tell()} bytes to the control plane for host {target.name}")
            sent["pack_bytes"] = transfer.push_relay(receive_job, out)
        job_dispatch.send(receive_job)
        received = _wait(receive_job, report, 50, 95, f"host {target.name}")
        if received.state != Job.State.SUCCEEDED:
            raise _job_error(f"host {target.name} did not take the container: {received.error or received.state}",
                             received.error_code or None, received.error_field or None)
    except Exception:
        if receive_job is not None:  # made but maybe never sent (the push failed): nothing may pick it up later
            job_dispatch.cancel(receive_job)
        if stopped:  # the source as it was
            with contextlib.suppress(Exception):
                reporter.save_status(row, mgr.start(row.engine_id))
        if Container.objects.filter(pk=to_row.pk).exists() and not Job.objects.filter(
                kind="container.receive", target_id=str(to_row.pk), state=Job.State.RUNNING).exists():
            _drop_target_rows(to_row)
        raise
    out = _finish_source(job, report, row, to_row, received, copy)
    out.update(sent=sent["sent"], pack_bytes=sent["pack_bytes"], blobs_sent=len(sent["blobs_sent"]),
               blobs_kept=len(sent["blobs_kept"]), was_running=was_running)
    return out


def _finish_source(job, report, row: Container, to_row: Container, received: Job, copy: bool) -> dict[str, Any]:
    result = {"container_id": to_row.pk, "host": to_row.host.name, "name": to_row.name, "from_container": row.pk,
              "state": (received.result or {}).get("state"), "digests": (received.result or {}).get("digests")}
    if copy:
        return result
    from workers.engine.containers import volumes

    report(96, f"removing {row.name} from host {job.host.name}")
    mgr = common.container_manager()
    with contextlib.suppress(errors.NoSuchContainer):
        mgr.remove(row.engine_id, force=True)
    for vid in _source_volumes(row):
        with contextlib.suppress(volumes.NoSuchVolume):
            volumes.remove(common.state_root(), vid, force=True)
    Volume.objects.filter(host=row.host, engine_id__in=list(_source_volumes(row))).delete()
    pk = row.pk
    Container.objects.filter(pk=pk).delete()
    row.pk, row.state = pk, "removed"
    common.publish_container(row)
    return result
