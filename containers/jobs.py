"""Job dispatch: a Job row plus a Celery task on the queue `host.<name>` of its host."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from . import events
from .models import Host, Job

RUN_JOB_TASK = "workers.tasks.run_job"
log = logging.getLogger(__name__)


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), str(ident)
    if isinstance(target, models.Model):
        return target._meta.model_name, str(target.pk)
    raise TypeError(f"target must be a model instance or a (type, id) tuple, not {type(target).__name__}")


def send(job: Job) -> None:
    """Queue the Celery task for `job` once the surrounding transaction has committed."""
    from webapp.celery import app

    queue = job.host.queue
    job_id = job.pk

    def publish() -> None:
        try:
            # No result backend: outcomes live in the Job row (and a dead Redis would hold this for ~20 s).
            app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue, ignore_result=True)
        except Exception as exc:  # kombu's OperationalError: the broker (Redis) cannot be reached
            # The job stays queued; the host's worker sends it again once it reaches the broker (workers/agent.py).
            log.warning("job %s: its task could not be queued on %s (%s); it is sent when the broker is back",
                        job_id, queue, exc)

    transaction.on_commit(publish)


def submit(
    kind: str,
    host: Host,
    *,
    params: dict[str, Any] | None = None,
    requested_by=None,
    target: Any = None,
    idempotency_key: str | None = None,
) -> Job:
    """Create a queued Job and dispatch it to `host`'s worker after commit.

    `target` is a model instance or a ("type", id) tuple. With an `idempotency_key` already used,
    the existing job is returned and nothing new is sent.
    """
    if idempotency_key:
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return existing
    target_type, target_id = _target(target)
    try:
        # A savepoint only where a duplicate key is caught below: each is two more round trips to the database.
        with transaction.atomic(savepoint=bool(idempotency_key)):
            job = Job.objects.create(
                kind=kind,
                host=host,
                params=params or {},
                requested_by=requested_by if requested_by is None or requested_by.is_authenticated else None,
                target_type=target_type,
                target_id=target_id,
                idempotency_key=idempotency_key or None,
            )
    except IntegrityError:
        if idempotency_key:
            return Job.objects.get(idempotency_key=idempotency_key)
        raise
    # The "queued" event goes out before the task: a fast worker's "running" must not be overtaken by it.
    transaction.on_commit(lambda: events.publish_job(job))
    send(job)
    return job


def cancel(job: Job) -> bool:
    """Cancel a job that has not started yet; a running job runs to its end. Returns whether it was cancelled."""
    updated = Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(
        state=Job.State.CANCELLED, finished=timezone.now(), message="cancelled"
    )
    job.refresh_from_db()
    if updated:
        transaction.on_commit(lambda: events.publish_job(job))
    return bool(updated)
