"""End to end: real redis-server, real Celery worker subprocesses, the real ASGI app over WebSocket."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from containers import jobs
from containers.models import Job
from webapp.asgi import application

pytestmark = [pytest.mark.e2e]


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")]


def test_probe_job_succeeds_and_its_events_arrive_over_websocket(berth_worker, wait_job):
    worker = berth_worker("e2e-probe")
    user = get_user_model().objects.create_user("alice", password="pw-alice-123")
    headers = session_headers(user)
    host = worker.host

    async def scenario() -> tuple[Job, list[dict]]:
        comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        job = await sync_to_async(jobs.submit)("host.probe", host, params={}, requested_by=user, target=host)
        seen = []
        while True:
            event = json.loads(await comm.receive_from(timeout=60))
            if event["type"] != "job":
                continue
            assert event["id"] == job.pk
            seen.append(event)
            if event["state"] in ("succeeded", "failed"):
                break
        await comm.disconnect()
        return job, seen

    job, seen = asyncio.run(scenario())
    states = [e["state"] for e in seen]
    assert states[-1] == "succeeded", seen[-1]
    assert "running" in states
    assert any(0 < e["progress"] < 100 for e in seen), "progress reports should arrive live"
    assert seen[-1]["progress"] == 100
    assert seen[-1]["owner_id"] == user.pk

    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED
    assert job.attempts == 1
    # The worker probed the real machine it runs on.
    with open("/proc/sys/kernel/osrelease") as f:
        assert job.result["kernel"] == f.read().strip()
    assert job.result["cgroup_version"] in ("v1", "v2", "hybrid")
    assert job.result["cpus"] >= 1 and job.result["memory_bytes"] > 0
    assert "berth" in job.result["runtimes"]
    host.refresh_from_db()
    assert host.online and host.kernel == job.result["kernel"]


def test_events_of_other_users_jobs_are_not_delivered(berth_worker, wait_job):
    worker = berth_worker("e2e-private")
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw-alice-123")
    bob = User.objects.create_user("bob", password="pw-bob-123")
    headers = session_headers(bob)
    host = worker.host

    async def scenario() -> list[dict]:
        comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        await sync_to_async(jobs.submit)("test.steps", host, params={"steps": 2}, requested_by=alice)
        marker = await sync_to_async(jobs.submit)("test.steps", host, params={"steps": 1}, requested_by=bob)
        got = []
        while True:
            event = json.loads(await comm.receive_from(timeout=60))
            if event["type"] == "job":
                got.append(event)
                if event["id"] == marker.pk and event["state"] == "succeeded":
                    break
        await comm.disconnect()
        return got

    got = asyncio.run(scenario())
    assert got and all(e["owner_id"] == bob.pk for e in got)


def test_failing_handler_ends_failed_with_readable_error(berth_worker, wait_job):
    worker = berth_worker("e2e-fail")
    job = jobs.submit("test.fail", worker.host, params={"error": "disk on fire"})
    job = wait_job(job)
    assert job.state == Job.State.FAILED
    assert job.error.startswith("the host hit an unexpected problem while running this test.fail job")
    assert "RuntimeError" not in job.error and "Traceback" not in job.error
    log = worker.log()  # the traceback, for the administrators
    assert "Traceback" in log and "RuntimeError: disk on fire" in log
    assert job.finished is not None and job.worker == ""


def test_unknown_job_kind_fails_with_reason(berth_worker, wait_job):
    worker = berth_worker("e2e-unknown")
    job = wait_job(jobs.submit("no.such.kind", worker.host))
    assert job.state == Job.State.FAILED
    assert "no handler for job kind 'no.such.kind'" in job.error


def test_worker_killed_mid_job_reruns_it_on_restart(berth_worker, wait_job, wait_for):
    worker = berth_worker("e2e-crash")
    job = jobs.submit("test.sleep", worker.host, params={"seconds": 600, "sleep_attempts": 1})
    wait_job(job, Job.State.RUNNING)
    worker.kill9()
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING  # nobody could have noticed yet: the host is down

    berth_worker("e2e-crash", state_root=worker.state_root)
    # Start hooks (@on_worker_start) ran once per start, with this host. The worker counts as
    # started at its first heartbeat, which can come just before the hooks have run: wait for them.
    starts = worker.state_root / "worker-starts.log"
    wait_for(lambda: starts.read_text().count("\n") >= 2, timeout=30, what="the second start hook")
    assert starts.read_text() == "e2e-crash\ne2e-crash\n"
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.result == {"attempt": 2}


def test_worker_killed_on_last_attempt_fails_the_job_with_reason(berth_worker, wait_job):
    worker = berth_worker("e2e-crash-last")
    job = jobs.submit("test.sleep", worker.host, params={"seconds": 600, "sleep_attempts": 99})
    wait_job(job, Job.State.RUNNING)
    # Pretend earlier attempts already died: this is the last one allowed.
    Job.objects.filter(pk=job.pk).update(attempts=3)
    worker.kill9()

    berth_worker("e2e-crash-last", state_root=worker.state_root)
    job = wait_job(job)
    assert job.state == Job.State.FAILED
    assert "worker for host e2e-crash-last died while running this job" in job.error


def test_pool_process_killed_mid_job_is_taken_over_without_restart(berth_worker, wait_job, wait_for):
    worker = berth_worker("e2e-child")
    job = jobs.submit("test.sleep", worker.host, params={"seconds": 600, "sleep_attempts": 1})
    job = wait_job(job, Job.State.RUNNING)
    pid = int(job.worker.split(":")[0])
    assert pid != worker.pid  # the job runs in a pool process, not in the worker's main process
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2


def test_host_goes_offline_after_missed_heartbeats(berth_worker, settings, wait_for):
    from django.utils import timezone

    from containers.models import Host

    worker = berth_worker("e2e-offline")
    first = worker.host.last_heartbeat
    # Heartbeats keep coming (every second in tests) while the worker lives.
    wait_for(lambda: worker.host.last_heartbeat > first, what="a second heartbeat")
    worker.kill9()
    last = worker.host.last_heartbeat  # the worker is gone: no heartbeat comes after this one
    # The rule, checked on both sides of the cutoff with bounds that cannot race (no 3 s window against a 1 s
    # heartbeat on a loaded machine): online while the last heartbeat is younger than BERTH_HOST_OFFLINE_AFTER...
    settings.BERTH_HOST_OFFLINE_AFTER = (timezone.now() - last).total_seconds() + 3600
    assert worker.host.online and Host.objects.online().filter(name="e2e-offline").exists()
    # ...offline once it is older.
    settings.BERTH_HOST_OFFLINE_AFTER = 0.5
    wait_for(lambda: (timezone.now() - last).total_seconds() > 0.5, what="half a second without a heartbeat")
    assert worker.host.last_heartbeat == last
    assert not worker.host.online
    assert not Host.objects.online().filter(name="e2e-offline").exists()
