"""Celery tasks: the only bridge between Jobs (Django) and the engine (workers/engine, Django-free).

`run_job(job_id)` claims the job atomically (so a redelivered message never runs it twice at once),
runs the registered handler, and always ends the job succeeded or failed. Worker start registers the
host, recovers jobs a dead worker left running, and starts the heartbeat.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from containers import events
from containers.models import Job
from webapp import heap
from workers import agent, failpoint, handlers, job_errors

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = job_errors.MAX_ERROR_CHARS


class JobError(Exception):
    """An expected failure whose message is shown to the user as is (no exception class name). `code` and
    `field` (kept from the engine error it reports) are stored on the failed job."""

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code or "job_failed"
        self.field = field


def describe(exc: BaseException, kind: str = "") -> str:
    """A readable one-paragraph error text for a failed job (the traceback goes to the log)."""
    return job_errors.describe(exc, kind, readable=(JobError,))


def claim(job_id: int, token: str) -> Job | None:
    """Atomically move the job to `running` for this process, or return None if it is not ours to run:
    finished, cancelled, or running in another live process."""
    now = timezone.now()
    running_elsewhere = Job.objects.filter(pk=job_id, state=Job.State.RUNNING).values_list("worker", flat=True)
    dead = [w for w in running_elsewhere if not agent.token_alive(w)]
    # A redelivered message for a job whose process died (e.g. a pool child killed) takes it over,
    # within the attempt budget; the heartbeat would otherwise re-queue it.
    cond = Q(state=Job.State.QUEUED)
    if dead:
        cond |= Q(state=Job.State.RUNNING, worker=dead[0], attempts__lt=settings.BERTH_JOB_MAX_ATTEMPTS)
    updated = Job.objects.filter(Q(pk=job_id) & cond).update(
        state=Job.State.RUNNING,
        worker=token,
        attempts=F("attempts") + 1,
        started=now,
        progress=0,
        message="",
        error="",
        error_code="",
        error_field="",
    )
    if not updated:
        return None
    return Job.objects.select_related("host", "requested_by").get(pk=job_id)


def _reporter(job: Job):
    def report(progress: int, message: str = "") -> None:
        job.progress = max(0, min(100, int(progress)))
        job.message = str(message)[:500]
        Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(progress=job.progress, message=job.message)
        events.publish_job(job)
        failpoint.hold(job, "report", job.message)

    return report


def _finish(job: Job, state: str, *, result: Any = None, error: str = "", cause: BaseException | None = None) -> None:
    job.state = state
    job.finished = timezone.now()
    job.error = error
    job.error_code, job.error_field = job_errors.code_and_field(cause) if error else ("", "")
    job.result = result
    job.worker = ""
    if state == Job.State.SUCCEEDED:
        job.progress = 100
    # Only the process that claimed the job may finish it.
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, worker=agent.process_token()).update(
            state=state, finished=job.finished, error=error, result=result, progress=job.progress, worker="",
            error_code=job.error_code, error_field=job.error_field)
    if updated:
        events.publish_job(job)
    else:
        log.warning("job %s: no longer ours to finish (taken over or cancelled); outcome %s dropped", job.pk, state)


class QueryCounter:
    """Counts the SQL statements run through a connection (Django's execute wrapper): the database round trips a
    job costs, logged with it and read by bench/pg.py."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _close_old_connections() -> None:
    """As Django does around a request: a connection past CONN_MAX_AGE or broken is closed (SQLite's: always), a
    kept one is health-checked before its first query (Celery's own close is off: CELERY_DB_REUSE_MAX). Never
    inside a transaction: a test runs a job in one (Django's test client skips this for its requests too)."""
    if not connection.in_atomic_block:
        close_old_connections()


@shared_task(name="workers.tasks.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> str:
    _close_old_connections()
    counter, started = QueryCounter(), time.monotonic()
    try:
        with connection.execute_wrapper(counter):
            outcome = _run_job(job_id)
    finally:
        _close_old_connections()
    log.info("job %s: %s in %.0f ms, %d queries", job_id, outcome, (time.monotonic() - started) * 1000, counter.count)
    return outcome


def _run_job(job_id: int) -> str:
    job = claim(job_id, agent.process_token())
    if job is None:
        log.info("job %s: not claimed (already done, cancelled or running elsewhere)", job_id)
        return "skipped"
    log.info("job %s: %s attempt %s on %s", job.pk, job.kind, job.attempts, job.host.name)
    events.publish_job(job)
    finished = False
    try:
        fn = handlers.get(job.kind)
        if fn is None:
            raise JobError(f"no handler for job kind {job.kind!r} on host {job.host.name}")
        result = fn(job, _reporter(job))
        if result is not None and not isinstance(result, dict):
            result = {"value": result}
        failpoint.hold(job, "finish")
        _finish(job, Job.State.SUCCEEDED, result=result or {})
        finished = True
    except Exception as exc:
        log.exception("job %s (%s) failed", job.pk, job.kind)
        _finish(job, Job.State.FAILED, error=describe(exc, job.kind), cause=exc)
        finished = True
    finally:
        if not finished:  # SystemExit, KeyboardInterrupt…: never leave the job running
            _finish(job, Job.State.FAILED, error="the worker was interrupted while running this job")
    return job.state


# --- worker lifecycle --------------------------------------------------------------------------------

_heartbeat: agent.Heartbeat | None = None


@worker_init.connect
def _on_worker_init(sender=None, **kwargs) -> None:
    heap.keep_freed_memory()  # a transfer's buffers reuse the heap's pages (webapp/heap.py); the pool inherits it
    handlers.preload()  # before the pool forks: its job processes start with the handlers imported


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    global _heartbeat
    started = timezone.now()
    handlers.load_all()  # import errors in handler modules show at start, not at the first job
    why = agent.refusal()
    if why:  # a host whose join token was revoked: no registration, no jobs
        agent.stop_worker_refused(why)
        return
    # Before the first beat, while the host still reads as offline: jobs that waited for it past their
    # offline timeout fail instead of running late (containers/offline.py).
    expired = agent.expire_waited_jobs()
    host = agent.beat()
    recovered = agent.recover_orphaned_jobs(host)
    resent = agent.resend_queued_jobs(host, before=started)
    agent.publish_back(host)
    log.info("host %s registered; %d orphaned job(s) recovered, %d queued job(s) re-sent, %d failed for waiting "
             "too long while it was offline", host.name, len(recovered), resent, len(expired))
    _heartbeat = agent.Heartbeat(host.name)
    _heartbeat.start()
    for hook in handlers.STARTUP_HOOKS:
        try:
            hook(host)
        except Exception:  # one failing hook must not keep the host from serving jobs
            log.exception("worker start hook %s.%s failed", hook.__module__, hook.__qualname__)


@worker_shutdown.connect
def _on_worker_shutdown(sender=None, **kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
