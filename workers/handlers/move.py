"""Move and copy a container between hosts (issue 18): a chain of per-host jobs, no shared disk, no SSH.

The user's job (`container.move` / `container.copy`) runs on the SOURCE host's worker and drives the chain;
the web side (containers/services/move.py) made the target's rows already. The target's steps are in
workers/handlers/move_receive.py.

  1. target `host.blobs`: which image blobs the target has (so only the missing ones travel); the receive of
     step 3 is sent right after it, so the target takes it up while the source stops the container;
  2. source: a move stops the container (its files and volumes then hold still; its ports are free for the
     target); a copy leaves it running. The pack (engine: containers/move_pack.py: the image's missing
     blobs, each named volume's data, the upper dir, digests of all) is pushed to the control plane for
  3. target `container.receive`: reads the pack from the control plane as it arrives, stores the blobs
     (checked against their digests), restores the volumes, creates the container under the same name with
     the same spec, unpacks the upper dir, checks every member's digest, and starts it if the source was
     running. On any failure it removes what it made (container, volumes, rows), so the target is as before;
  4. source: only once 3 succeeded, a move removes the container and its named volumes from the source.
     If 1 or 3 failed, the source is left as it was: a container the move stopped is started again.

Worker deaths (never lost, never two). The job notes in its params how far it got (`was_running` before the
stop, `receive_job` once made), so a re-run after the source's worker died resumes: a receive that succeeded
is finished (the source removed), one in flight with its whole pack is waited for, anything else is given
up and the source started again if the move had stopped it. A target whose worker dies is offline once its
heartbeat is BERTH_HOST_OFFLINE_AFTER old: the source then gives its step up at once (BERTH_MOVE_TIMEOUT is
the last resort for a live target that never answers) unless the receive is past its point of no return
(move_receive.COMMITTED: then the container is the target's, and the source waits for it). A chain job whose
worker died on every attempt (BERTH_JOB_MAX_ATTEMPTS) ends failed without any of this: move_settle.py then
finishes it or gives it up, leaving the source stopped rather than starting it again.

The user's job shows the chain's progress and the failing step's error.

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.utils import timezone

from containers import events, offline
from containers import jobs as job_dispatch
from containers.models import Container, Host, Job, Volume
from containers.transfer_model import Transfer
from workers import transfer
from workers.engine.containers import errors, move_pack
from workers.handlers import common, handler, reporter
from workers.handlers.move_receive import ABANDONED, COMMITTED, job_error

log = logging.getLogger(__name__)
POLL = 0.02  # seconds between looks at the other host's job (one row read): each wait ends within one
HOST_EVERY = 0.5  # seconds between looks at that host's heartbeat (is it offline?)


def _timeout() -> float:
    return float(getattr(settings, "BERTH_MOVE_TIMEOUT", 3600))


def _note(job, **values: Any) -> None:
    """Remember how far the chain got in the job's params: a re-run after this worker died reads them."""
    job.params = {**(job.params or {}), **values}
    Job.objects.filter(pk=job.pk).update(params=job.params)


# --- on the source: the chain -----------------------------------------------------------------------

def _abandon(child: Job, why: str) -> bool:
    """Fail another host's job of the chain (queued, or running on a host that stopped answering) unless it is
    past its point of no return: one conditional update, against the receive's own (move_receive._commit)."""
    updated = Job.objects.filter(pk=child.pk, state__in=(Job.State.QUEUED, Job.State.RUNNING),
                                 progress__lt=COMMITTED).update(
        state=Job.State.FAILED, error=why, error_code=ABANDONED, finished=timezone.now(), worker="")
    child.refresh_from_db()
    if updated:
        events.publish_job(child)
    return bool(updated)


def _wait(child: Job, report, low: int, high: int, what: str) -> Job:
    """Wait for another host's job, mirroring its progress into [low, high]. Given up (failed) as soon as its
    host is offline, or after BERTH_MOVE_TIMEOUT, unless it is past its point of no return: then it is waited
    for until its host is back to finish it. The job's row is read every POLL (its end is seen within one), its
    host's heartbeat every HOST_EVERY."""
    deadline = time.monotonic() + _timeout()
    last = None
    host_seen = 0.0
    while True:
        child.refresh_from_db()
        if child.state in Job.FINISHED_STATES:
            return child
        seen = (child.state, child.progress, child.message)
        if seen != last:
            last = seen
            report(low + (high - low) * child.progress // 100, f"{what}: {child.message or child.state}")
        now = time.monotonic()
        why = None
        if now - host_seen >= HOST_EVERY:
            host_seen = now
            host = Host.objects.get(pk=child.host_id)  # its heartbeat now
            if not host.online:
                why = f"{offline.reason(host)}: the move gave its step up"
            elif now > deadline:
                why = f"host {host.name} did not finish {what} within {_timeout():g} s (BERTH_MOVE_TIMEOUT)"
        if why and _abandon(child, why):
            return child
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


def _drop_relay(receive_job: Job) -> None:
    """The pack of a chain given up: deleted at the control plane (a target reading it is cut at once), and its
    row here in case the control plane could not be reached (a reader then stops after its stall time)."""
    transfer.consume_upload(receive_job)
    Transfer.objects.filter(job=receive_job).delete()


def _give_back(row: Container, to_row: Container | None, receive_job: Job | None, *, stopped: bool) -> bool:
    """The source as it was after a chain that did not finish: a receive not started is cancelled (no later
    worker start may send it) and its relay dropped (a reader is cut), a container the move stopped is started
    again, the target's rows go unless its receive still runs (it removes them itself). Returns whether the
    source was started again."""
    if receive_job is not None:
        job_dispatch.cancel(receive_job)
        _drop_relay(receive_job)
    started = False
    if stopped:
        try:
            mgr = common.container_manager()
            if mgr.inspect(row.engine_id).get("state") in ("created", "exited"):
                reporter.save_status(row, mgr.start(row.engine_id))
                started = True
        except Exception:  # the chain's own error is the one raised; this one is in the worker's log
            log.exception("container %s: not started again after the chain that stopped it", row.name)
    if to_row is not None and Container.objects.filter(pk=to_row.pk).exists() and not Job.objects.filter(
            kind="container.receive", target_id=str(to_row.pk), state=Job.State.RUNNING).exists():
        _drop_target_rows(to_row)
    return started


@handler("container.move")
def move(job, report) -> dict[str, Any]:
    return _send(job, report, copy=False)


@handler("container.copy")
def copy(job, report) -> dict[str, Any]:
    return _send(job, report, copy=True)


def _send(job, report, *, copy: bool) -> dict[str, Any]:
    row = common.target_container(job)
    to_row = Container.objects.filter(pk=job.params.get("to_container") or 0).first()
    target = Host.objects.filter(pk=job.params.get("to_host") or 0).first()
    if "was_running" in job.params:  # a re-run after this worker died mid-chain (the target's rows may be gone)
        return _resume(job, report, row, to_row, target, copy)
    if to_row is None or target is None:
        raise job_error("the target container or host is gone: ask again")
    mgr = common.container_manager()
    began = time.monotonic()
    report(1, f"asking host {target.name} which image blobs it has")
    try:
        blobs_job = job_dispatch.submit("host.blobs", target, requested_by=job.requested_by, target=to_row)
    except Exception:
        _drop_target_rows(to_row)
        raise
    info = mgr.inspect(row.engine_id)
    was_running = info.get("state") in ("running", "paused")
    _note(job, was_running=was_running)  # before the stop: a re-run must know it ran
    stopped = False
    receive_job = out = untied = None
    seconds: dict[str, float] = {}
    try:
        receive_job = Job.objects.create(
            kind="container.receive", host=target, requested_by=job.requested_by, target_type="container",
            target_id=str(to_row.pk),
            params={"start": was_running, "volume_map": job.params.get("volume_map") or {}, "copy": copy,
                    "from_container": row.pk, "chain": job.pk, "engine_id": to_row.engine_id,
                    "volume_ids": [v["engine_id"] for v in (to_row.config or {}).get("volumes") or []]})
        _note(job, receive_job=receive_job.pk)
        # Sent before the stop (after the blob list, in the target's queue): the target takes it up and waits on
        # the relay while this host stops the container, so the job hop and the stop overlap. Its relay row
        # exists before it asks for it.
        out = transfer.RelayWriter(receive_job)
        job_dispatch.send(receive_job)
        _checkpoint(mgr, row)
        if was_running and not copy:
            report(6, f"stopping {row.name} on {job.host.name}")
            stopped = True  # from here on a failure starts it again, whatever the stop got to
            stopping = time.monotonic()
            reporter.save_status(row, mgr.stop(row.engine_id, timeout=int(job.params.get("timeout") or 10),
                                               network=False))
            seconds["of which stop"] = round(time.monotonic() - stopping, 3)
            # Its networking is undone while it packs, done before the pack's last part (the target starts the
            # container only once it has that part: the same ports on the same machine are free by then).
            untied = _in_background(lambda: mgr.teardown_network(row.engine_id))
        blobs = _wait(blobs_job, report, 6, 8, f"host {target.name}")
        if blobs.state != Job.State.SUCCEEDED:
            raise job_error(f"host {target.name} could not list its image blobs: {blobs.error or blobs.state}")
        shipping = time.monotonic()
        seconds["blobs+stop"] = round(shipping - began, 3)
        try:
            sent = _ship(report, row, target, out, blobs.result.get("blobs") or [], copy, before_end=untied)
            sent["seconds"] = round(time.monotonic() - shipping, 3)  # pack + push, while the target reads
        except Exception:
            # The target may have refused the container and dropped the relay (failing the push): then its reason
            # is the one to tell. Else the failure is this side's: the target's reader is cut here, and it ends.
            dropped_there = not Transfer.objects.filter(job=receive_job).exists()
            job_dispatch.cancel(receive_job)
            _drop_relay(receive_job)
            received = _wait(receive_job, report, 50, 95, f"host {target.name}")
            if received.state == Job.State.SUCCEEDED:  # the last part arrived, its answer did not
                sent = {"sent": {}, "pack_bytes": None, "blobs_sent": [], "blobs_kept": []}
            elif not dropped_there or received.state != Job.State.FAILED or not received.error:
                raise
        else:
            received = _wait(receive_job, report, 50, 95, f"host {target.name}")
        if received.state != Job.State.SUCCEEDED:
            raise job_error(f"host {target.name} did not take the container: {received.error or received.state}",
                            received.error_code or None, received.error_field or None)
    except Exception:
        if out is not None:
            out.abort()
        if untied is not None:
            untied.exception()  # waited for (not raised) before a start again sets the networking up
        _give_back(row, to_row, receive_job, stopped=stopped)
        raise
    removing = time.monotonic()
    seconds["ship+receive"] = round(removing - shipping, 3)
    result = _finish_source(job, report, row, to_row, received, copy)
    seconds["remove"] = round(time.monotonic() - removing, 3)
    result.update(sent=sent["sent"], pack_bytes=sent["pack_bytes"], blobs_sent=len(sent["blobs_sent"]),
                  blobs_kept=len(sent["blobs_kept"]), was_running=was_running, ship_seconds=sent.get("seconds"),
                  seconds=seconds)
    return result


def _in_background(fn: Callable[[], object]) -> Future:
    """`fn` run by a thread of its own: result() waits for it and raises what it raised, exception() only waits."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="move-behind")
    try:
        return pool.submit(fn)
    finally:
        pool.shutdown(wait=False)  # the submitted call still runs; nothing else will


def _ship(report, row: Container, target: Host, out: transfer.RelayWriter, have: list[str], copy: bool,
          before_end: Future | None = None) -> dict[str, Any]:
    """Step 2's pack, streamed to the control plane through `out` (the receive job's relay, sent already): the
    target reads the pack while this host still makes it (containers/transfer_relay.py). `before_end` is waited
    for before the pack's last part goes."""
    rootfs = common.container_manager().rootfs(row.engine_id)
    image_ref = row.image.engine_ref if row.image_id and row.image else ""
    try:
        report(8, f"{'copying' if copy else 'moving'} {row.name}: streaming what host {target.name} lacks")
        sent = move_pack.write_pack(common.image_store(), rootfs["manifest"], image_ref, out, have=have,
                                    upper=rootfs["upperdir"], volumes=_source_volumes(row),
                                    progress=lambda m: report(20, m))
        if before_end is not None:
            before_end.result()
        sent["pack_bytes"] = out.close()
    except BaseException:
        out.abort()
        raise
    return sent


def _resume(job, report, row: Container, to_row: Container | None, target: Host | None, copy: bool
            ) -> dict[str, Any]:
    """A re-run after this worker died mid-chain: finish what the target took, give the rest up."""
    stopped = bool(job.params.get("was_running")) and not copy
    receive = Job.objects.filter(pk=job.params.get("receive_job") or 0, kind="container.receive").first()
    try:
        if receive is not None and receive.state in (Job.State.QUEUED, Job.State.RUNNING):
            if Transfer.objects.filter(job=receive, kind=Transfer.Kind.UPLOAD).exists():
                if receive.state == Job.State.QUEUED:
                    job_dispatch.send(receive)  # the whole pack arrived; a duplicate message is harmless
            else:  # the push died with this worker: its reader is cut now, a receive not started never starts
                job_dispatch.cancel(receive)
                _drop_relay(receive)
        if receive is not None and receive.state not in Job.FINISHED_STATES:
            report(50, f"host {receive.host.name}: waiting for the receive this worker left")
            receive = _wait(receive, report, 50, 95, f"host {receive.host.name}")
    except Exception:
        _give_back(row, to_row, receive, stopped=stopped)
        raise
    if receive is not None and receive.state == Job.State.SUCCEEDED and to_row is not None:
        return {**_finish_source(job, report, row, to_row, receive, copy), "was_running": stopped, "resumed": True}
    started = _give_back(row, to_row, receive, stopped=stopped)
    verb = "copy" if copy else "move"
    where = f"host {target.name}" if target is not None else "the target host"
    raise job_error(f"the worker of host {job.host.name} died during this {verb} (attempt {job.attempts - 1}) "
                    f"before {where} had the container: {row.name} stays on {job.host.name}"
                    + (" and was started again" if started else "") + f"; ask for the {verb} again",
                    "worker_died")


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
