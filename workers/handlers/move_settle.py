"""What a move or copy leaves when its worker died on every attempt (issue 18; the chain is in move.py).

`requeue_or_fail` (workers/agent.py) fails a job whose worker died BERTH_JOB_MAX_ATTEMPTS times without its
handler's cleanup. For the chain's jobs that would leave half a move: a receive queued or running on the
target with the target's rows and the relay, a source container stopped by the move, or a half-made
container on the target. The given-up hook queues `container.settle` on the failed job's own host, which:

- for a `container.move` / `container.copy` (on the source): finishes the move if the target's receive had
  passed its point of no return and succeeds (as `_resume` would); else abandons the receive with the same
  conditional update as `_abandon`, drops the relay and the target's rows, and leaves the source container
  on its host, stopped if the move had stopped it (a stop or a give-back start cut short by a death), never
  started again: starting may be what kills the worker. The chain's error then says what happened and where
  the container is;
- for a `container.receive` (on the target): removes what it made there, container, volumes and rows
  (the source, seeing its receive failed, gives back as for any failed receive), so it never runs twice.

Why a job rather than the work in the hook: the hook runs in the worker's main process (its start-up or its
heartbeat thread), where a stop (up to its timeout) or a wait for a committed receive would hold the heartbeat
up until the host reads offline; and the engine calls for a container must run on its own host. The job is on
that host's queue, run by its pool with the usual claim, attempts and error."""

from __future__ import annotations

import logging
from typing import Any

from containers import events
from containers import jobs as job_dispatch
from containers.models import Container, Host, Job, Volume
from workers.engine.containers import errors, states
from workers.handlers import common, handler, move, move_receive, on_given_up, reporter

log = logging.getLogger(__name__)

KIND = "container.settle"


@on_given_up("container.move", "container.copy", "container.receive")
def settle_later(job: Job) -> None:
    """Queue the settling of `job` on its host (see the module's text); the job's error and params name it."""
    settle = job_dispatch.submit(KIND, job.host, params={"given_up": job.pk}, requested_by=job.requested_by,
                                 target=("container", job.target_id), idempotency_key=f"settle:{job.pk}")
    job.params = {**(job.params or {}), "settled_by": settle.pk}
    job.error = f"{job.error}; job #{settle.pk} settles what it left"
    Job.objects.filter(pk=job.pk).update(params=job.params, error=job.error)


@handler(KIND)
def settle(job, report) -> dict[str, Any]:
    given_up = Job.objects.select_related("host").filter(pk=job.params.get("given_up") or 0).first()
    if given_up is None or given_up.state != Job.State.FAILED:
        return {"settled": None}
    if given_up.kind == "container.receive":
        return _settle_receive(given_up)
    return _settle_chain(given_up, report)


def _settle_chain(chain: Job, report) -> dict[str, Any]:
    copy = chain.kind == "container.copy"
    verb, src = ("copy" if copy else "move"), chain.host.name
    row = Container.objects.select_related("host", "image").filter(pk=chain.target_id, host=chain.host).first()
    to_row = Container.objects.filter(pk=chain.params.get("to_container") or 0).first()
    target = Host.objects.filter(pk=chain.params.get("to_host") or 0).first()
    there = f"host {target.name}" if target is not None else "the target host"
    name = row.name if row is not None else f"container #{chain.target_id}"
    died = f"the worker of host {src} died during each of the {chain.attempts} attempts of this {verb}"
    receive = Job.objects.select_related("host").filter(pk=chain.params.get("receive_job") or 0,
                                                        kind="container.receive").first()
    if receive is not None and receive.state not in Job.FINISHED_STATES:
        if not move._abandon(receive, f"{died}: the {verb} was given up"):  # past its point of no return
            report(10, f"{there}: waiting for the receive past its point of no return")
            receive = move._wait(receive, report, 10, 90, there)
    if receive is not None and receive.state == Job.State.SUCCEEDED and to_row is not None:
        if row is not None:
            move._finish_source(chain, report, row, to_row, receive, copy)
        outcome = "finished"
        text = (f"{died}; {there} had taken {name} by then, so the {verb} was finished: {name} is on {there}"
                + ("" if copy else f" and no longer on host {src}"))
    else:
        if receive is not None:
            move._drop_relay(receive)
        if to_row is not None and Container.objects.filter(pk=to_row.pk).exists():
            move._drop_target_rows(to_row)
        stopped = bool(chain.params.get("was_running")) and not copy
        state = _at_rest(row, stopped=stopped)
        outcome = "given up"
        text = (f"{died}, so it was given up: nothing of it stays on {there}; {name} stays on host {src}, {state}"
                + (" (the move had stopped it; after repeated deaths it is not started again, since starting may "
                   "be what kills the worker: start it when you want it)" if stopped and state != states.RUNNING
                   else "") + f"; ask for the {verb} again")
    Job.objects.filter(pk=chain.pk, state=Job.State.FAILED).update(error=text, error_code="worker_died")
    chain.refresh_from_db()
    events.publish_job(chain)
    return {"given_up": chain.pk, "outcome": outcome, "receive": receive.pk if receive is not None else None}


def _at_rest(row: Container | None, *, stopped: bool) -> str:
    """The source container's state, stopped first if the move had stopped it, and written on its row."""
    if row is None:
        return "gone"
    mgr = common.container_manager()
    try:
        info = mgr.inspect(row.engine_id)
        if stopped and info.get("state") in states.ACTIVE:
            info = mgr.stop(row.engine_id, timeout=10)
    except errors.NoSuchContainer:
        return "gone from its engine"
    reporter.save_status(row, info)
    return str(info.get("state"))


def _settle_receive(receive: Job) -> dict[str, Any]:
    """A receive failed for good: what it made on this host goes, whatever its progress (its source gives back,
    as for any failed receive, so the container must not stay here)."""
    engine_id, made = receive.params.get("engine_id") or "", list(receive.params.get("volume_ids") or [])
    row = Container.objects.filter(pk=int(receive.target_id or 0), host=receive.host).first()
    if row is not None:
        move_receive._cleanup_target(row, made)
    elif engine_id:
        move_receive._remove_made(engine_id, made)
        Volume.objects.filter(host=receive.host, engine_id__in=made).delete()
    error = f"{receive.error}; what it had made on host {receive.host.name} was removed"
    Job.objects.filter(pk=receive.pk, state=Job.State.FAILED).update(
        error=error, result={**(receive.result or {}), "cleared": True})
    receive.refresh_from_db()
    events.publish_job(receive)
    return {"given_up": receive.pk, "outcome": "removed"}
