"""The host agent's duties besides running jobs: facts, registration, heartbeat, orphaned-job recovery."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from containers import events
from containers.jobs import send
from containers.models import Host, Job
from workers.engine.runtime.cgroups import host_mode

log = logging.getLogger(__name__)



# --- facts -------------------------------------------------------------------------------------------

def cgroup_version(mountinfo: str = "/proc/self/mountinfo") -> str:
    """"v2" (unified), "hybrid" (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified) or "v1": the engine's one
    detector, so the heartbeat and the runtime never disagree."""
    return host_mode(mountinfo)


def memory_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runtimes() -> list[str]:
    """The runtimes that work on this host (berth first), each probed by running a container through the seam:
    installed is not enough (crun refuses hybrid cgroups)."""
    from workers.engine.containers import runtime_probe

    return runtime_probe.working()


def runtime_problems() -> dict[str, str]:
    """Why each runtime Berth knows does not work here (not installed, or its probe's error)."""
    from workers.engine.containers import runtime_probe

    return runtime_probe.problems()


def host_facts(state_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    root = Path(state_root or settings.BERTH_STATE_ROOT)
    uname = os.uname()
    facts: dict[str, Any] = {
        "kernel": uname.release,
        "os": _os_pretty_name(),
        "arch": uname.machine,
        "cgroup_version": cgroup_version(),
        "cpus": cpu_count(),
        "memory_bytes": memory_total_bytes(),
        "runtimes": runtimes(),
        "runtime_problems": runtime_problems(),
        "state_root": str(root),
        # the dirs non-superusers may bind-mount here: the web side checks mounts against these
        "bind_roots": [str(r) for r in getattr(settings, "BERTH_BIND_MOUNT_ROOTS", []) or []],
    }
    probe = root if root.exists() else root.parent
    try:
        usage = shutil.disk_usage(probe)
        facts["disk_free_bytes"] = usage.free
        facts["disk_total_bytes"] = usage.total
    except OSError:
        pass
    return facts


def _os_pretty_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


# --- registration and heartbeat ----------------------------------------------------------------------

def beat(name: str | None = None) -> Host:
    """Register or refresh this host's row with current facts and a fresh heartbeat; emit a host event."""
    name = name or settings.BERTH_HOST_NAME
    facts = host_facts()
    host, _ = Host.objects.update_or_create(
        name=name,
        defaults={
            "facts": facts,
            "kernel": facts["kernel"],
            "cgroup_version": facts["cgroup_version"],
            "cpus": facts["cpus"],
            "memory_bytes": facts["memory_bytes"],
            "runtimes": facts["runtimes"],
            "last_heartbeat": timezone.now(),
        },
    )
    events.publish_host(host)
    return host


def expire_waited_jobs(name: str | None = None) -> list[int]:
    """Fail this host's queued jobs that waited for it, offline, past their timeout (containers/offline.py)."""
    from containers import offline

    host = Host.objects.filter(name=name or settings.BERTH_HOST_NAME).first()
    return offline.expire_jobs(host) if host is not None else []


def publish_back(host: Host) -> None:
    """Tell open dashboards the host is back: its containers' states are known again (the control plane's
    watch says so too; this covers a control plane that runs none)."""
    from containers import offline

    offline.publish_all(host)


# The exit status of a worker refused by the control plane (BSD's EX_NOPERM): berth_agent tells it from a crash.
EX_REFUSED = 77


def refusal(name: str | None = None) -> str | None:
    """Why this host's worker may not serve (its join token was revoked), or None (containers/join.py)."""
    from containers import join

    return join.refusal(name or settings.BERTH_HOST_NAME)


def stop_worker_refused(why: str) -> None:
    """Stop the Celery worker of this process: it takes no more messages, lets running jobs finish (warm
    shutdown) and exits with EX_REFUSED. Called from the heartbeat thread, so only a flag is set, which the
    worker's event loop reads on its next turn."""
    from celery.worker import state

    log.error("%s; stopping this worker (exit status %d)", why, EX_REFUSED)
    state.should_stop = EX_REFUSED


class Heartbeat(threading.Thread):
    """Daemon thread in the worker's main process: heartbeat + recovery of jobs whose process died. A host
    whose join token is revoked is refused at its next beat: `on_refused(why)` stops the worker."""

    def __init__(self, name: str | None = None, interval: float | None = None,
                 on_refused: Callable[[str], None] = stop_worker_refused) -> None:
        super().__init__(name="berth-heartbeat", daemon=True)
        self.host_name = name or settings.BERTH_HOST_NAME
        self.interval = interval if interval is not None else settings.BERTH_HEARTBEAT_SECONDS
        self.stopping = threading.Event()
        self.on_refused = on_refused

    def run(self) -> None:
        broker = BrokerWatch()
        while not self.stopping.wait(self.interval):
            try:
                close_old_connections()
                why = refusal(self.host_name)
                if why:
                    self.on_refused(why)
                    return  # a refused host beats no more: it shows offline
                host = beat(self.host_name)
                recover_orphaned_jobs(host)
                if broker.came_back():
                    n = resend_queued_jobs(host, before=timezone.now())
                    log.warning("the broker was unreachable or restarted; %d queued job(s) of host %s sent again "
                                "(their messages may have been lost)", n, host.name)
            except Exception:
                log.exception("heartbeat of host %s failed", self.host_name)

    def stop(self) -> None:
        self.stopping.set()


# --- the broker ------------------------------------------------------------------------------------

REACHABLE = "reachable"


def broker_run_id(url: str | None = None) -> str | None:
    """The broker's run id (a redis-server's, new at each start; REACHABLE where INFO is not allowed), or None
    while it cannot be reached."""
    import redis

    try:
        client = redis.Redis.from_url(url or settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
    except ValueError:
        return None
    try:
        return str(client.info("server").get("run_id") or REACHABLE)
    except redis.ResponseError:  # e.g. an ACL user without INFO: reachable, restarts unseen
        return REACHABLE
    except redis.RedisError:
        return None
    finally:
        client.close()


class BrokerWatch:
    """Tells when the broker is back after an outage or a restart: queued jobs' messages sent meanwhile failed, and
    a Redis without persistence lost those it held. Their rows stay queued; the caller sends them again (a job
    is claimed once, so a duplicate costs nothing)."""

    def __init__(self, probe: Callable[[], str | None] = broker_run_id) -> None:
        self.probe = probe
        self.seen = probe()
        self.lost = self.seen is None

    def came_back(self) -> bool:
        now = self.probe()
        if now is None:
            self.lost = True
            return False
        back = self.lost or now != self.seen
        self.seen, self.lost = now, False
        return back


# --- which process runs a job ------------------------------------------------------------------------

def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the ")" that ends the command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def process_token(pid: int | None = None) -> str:
    """Identifies a live process across PID reuse: "<pid>:<start time in clock ticks>"."""
    pid = pid or os.getpid()
    return f"{pid}:{_start_ticks(pid)}"


def token_alive(token: str) -> bool:
    pid, _, ticks = (token or "").partition(":")
    if not pid.isdigit():
        return False
    return _start_ticks(int(pid)) == ticks


# --- recovery ----------------------------------------------------------------------------------------

def recover_orphaned_jobs(host: Host) -> list[int]:
    """Jobs of `host` left running by a process that no longer exists: re-queue them while attempts
    remain, else fail them with a reason. Returns the ids of the jobs touched."""
    touched = []
    for job in Job.objects.filter(host=host, state=Job.State.RUNNING).only("id", "worker", "attempts"):
        if token_alive(job.worker):
            continue
        if requeue_or_fail(job.pk, dead_worker=job.worker, host_name=host.name):
            touched.append(job.pk)
    return touched


def requeue_or_fail(job_id: int, *, dead_worker: str, host_name: str) -> bool:
    """Move one job from `running` under a dead process to `queued` (re-sent) or `failed`."""
    max_attempts = settings.BERTH_JOB_MAX_ATTEMPTS
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("host").filter(pk=job_id).first()
        if job is None or job.state != Job.State.RUNNING or job.worker != dead_worker:
            return False
        if job.attempts < max_attempts:
            job.state = Job.State.QUEUED
            job.message = f"re-queued: the worker for host {host_name} died during attempt {job.attempts}"
            job.worker = ""
            job.save(update_fields=["state", "message", "worker"])
            send(job)
        else:
            job.state = Job.State.FAILED
            job.error = f"worker for host {host_name} died while running this job ({job.attempts} attempts)"
            job.finished = timezone.now()
            job.worker = ""
            job.save(update_fields=["state", "error", "finished", "worker"])
            transaction.on_commit(lambda: given_up(job))
        log.warning("job %s: %s", job.pk, job.message if job.state == Job.State.QUEUED else job.error)
        transaction.on_commit(lambda: events.publish_job(job))
    return True


def given_up(job: Job) -> None:
    """The kind's cleanup for a job failed because its worker died on every attempt (its handler's own never ran):
    workers/handlers' `on_given_up`. A failing hook is logged; the job stays failed."""
    from workers import handlers

    hook = handlers.given_up_hook(job.kind)
    if hook is None:
        return
    try:
        hook(job)
    except Exception:
        log.exception("job %s (%s): its given-up hook %s failed", job.pk, job.kind, hook.__qualname__)


def resend_queued_jobs(host: Host, before) -> int:
    """Re-send queued jobs created before this worker started: their message may have been prefetched
    by a worker that died. Duplicated messages are harmless (a job is claimed once)."""
    count = 0
    for job in Job.objects.filter(host=host, state=Job.State.QUEUED, created__lt=before).select_related("host"):
        with transaction.atomic():
            send(job)
        count += 1
    return count
