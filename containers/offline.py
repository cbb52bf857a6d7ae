"""What Berth says about a host that stopped heartbeating, and what it does to the jobs waiting for it.

Offline is decided by the clock, at read time: a host whose last heartbeat is older than
BERTH_HOST_OFFLINE_AFTER is offline (Host.online), so every reader agrees within the second, with no process
having to notice it first, however many hosts there are and even when none is alive. While it is offline:

- its containers show `unknown` (their rows keep the last state the host reported: `last_known_state`);
- a job queued for it shows why it waits ("host X is offline since …");
- a queued job fails once it has waited longer than the host's offline_job_timeout (else
  BERTH_OFFLINE_JOB_TIMEOUT; 0 waits forever) with the host offline. That needs a writer: the control plane's
  watch (offline_watch.py, run by berth_run) and the host's own worker when it comes back, before it serves.

The failure is a conditional update (queued → failed), as the worker's claim is (queued → running): whichever
comes first wins, so a job is never both run and failed. Nothing here moves a container to another host: a
container belongs to one host, whose own monitor applies its restart policy, so it never runs twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import events
from .models import Container, Host, Job

UNKNOWN = "unknown"
ERROR_CODE = "host_offline"


def shown_state(container: Container) -> str:
    """The state users are told: `unknown` while the container's host is offline (a removal keeps saying so)."""
    if container.state != Container.State.REMOVING and not container.host.online:
        return UNKNOWN
    return container.state


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def reason(host: Host) -> str:
    """Why jobs for `host` wait: "host X is offline since <its last heartbeat>"."""
    if host.last_heartbeat is None:
        return f"host {host.name} is offline (it never sent a heartbeat)"
    return f"host {host.name} is offline since {_when(host.last_heartbeat)}"


def job_timeout(host: Host) -> float:
    """Seconds a queued job waits for `host` while it is offline; 0: until it comes back."""
    if host.offline_job_timeout is not None:
        return float(host.offline_job_timeout)
    return float(settings.BERTH_OFFLINE_JOB_TIMEOUT)


def deadline(job: Job, host: Host) -> datetime | None:
    """When a queued job for the offline `host` fails: its timeout counted from when it was both queued and the
    host offline (the host is offline BERTH_HOST_OFFLINE_AFTER after its last heartbeat). None: never."""
    timeout = job_timeout(host)
    if timeout <= 0:
        return None
    went = (host.last_heartbeat or job.created) + timedelta(seconds=settings.BERTH_HOST_OFFLINE_AFTER)
    return max(job.created, went) + timedelta(seconds=timeout)


def job_message(job: Job) -> str:
    """The job's message as users see it: a queued job for an offline host says why it waits, and until when; one
    it was running says that its outcome is unknown (the returning worker re-queues or fails it)."""
    if job.state not in (Job.State.QUEUED, Job.State.RUNNING) or job.host.online:
        return job.message
    if job.state == Job.State.RUNNING:
        return f"{reason(job.host)}: how this job ends is known when the host is back"
    ends = deadline(job, job.host)
    then = f"; it fails at {_when(ends)} unless the host is back" if ends else "; it runs when the host is back"
    return f"waiting: {reason(job.host)}{then}"


def expire_jobs(host: Host, now: datetime | None = None) -> list[int]:
    """Fail the queued jobs of `host` that waited for it, offline, past their deadline. Returns their ids."""
    now = now or timezone.now()
    if host.online or job_timeout(host) <= 0:
        return []
    failed = []
    for job in Job.objects.filter(host=host, state=Job.State.QUEUED).select_related("host"):
        ends = deadline(job, host)
        if ends is None or ends > now:
            continue
        waited = (now - max(job.created, ends - timedelta(seconds=job_timeout(host)))).total_seconds()
        error = (f"{reason(host)}: this job waited {waited:.0f} s for it, longer than the {job_timeout(host):g} s "
                 f"allowed (the host's offline job timeout), and was not run")
        with transaction.atomic():
            # Conditional, like the worker's claim: a job its host took in the meantime is left to it.
            if not Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(
                    state=Job.State.FAILED, error=error, error_code=ERROR_CODE, error_field="", finished=now):
                continue
        job.state, job.error, job.error_code, job.finished = Job.State.FAILED, error, ERROR_CODE, now
        events.publish_job(job)
        failed.append(job.pk)
    return failed


def publish_all(host: Host) -> None:
    """Events for the host, its containers and its queued jobs, so that open dashboards show what is known now
    (sent when the host is seen going offline or coming back)."""
    events.publish_host(host)
    for container in Container.objects.filter(host=host).select_related("host").order_by("pk"):
        events.publish_container(container)
    for job in Job.objects.filter(host=host, state=Job.State.QUEUED).select_related("host").order_by("pk"):
        events.publish_job(job)
