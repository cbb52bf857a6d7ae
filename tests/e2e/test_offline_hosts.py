"""A host whose worker is killed -9 (issue 18), end to end: three hosts on this machine (own state roots, queues
and host names; real redis-server, real Celery workers, the real engine and monitor), the API in this process and
the control plane's offline watch as berth_run runs it (a thread of the control plane's process).

The killed host is offline once its last heartbeat is older than BERTH_HOST_OFFLINE_AFTER (8 s here, 15 s by
default: read at the time of asking, so the test waits for the clock, not for a process); its containers show
`unknown`; a job queued for it meanwhile waits saying why, then runs when its worker is back, which reconciles (an
exit meanwhile is recorded); on a host whose timeout is short the job fails with a clear error instead; the
restart-policy container is never started anywhere else. Everything made is removed by id/PID at the end."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from containers import jobs, offline, services
from containers.models import Container, Job
from containers.offline_watch import Watch
from tests.support import berth_cgroups, clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LONG = ["sh", "-c", "sleep 600"]
OFFLINE_AFTER = 8.0  # 8 heartbeats of the tests' 1 s; the default is 15 s against 5 s


@pytest.fixture(scope="module", autouse=True)
def _no_cgroup_parent_left() -> Iterator[None]:
    had = berth_cgroups()
    yield
    for d in berth_cgroups() - had:
        with contextlib.suppress(OSError):
            os.rmdir(d)


@pytest.fixture
def hosts(berth_worker, settings):
    """berth_worker with this test's offline rule, plus cleanup: workers stopped first (no restart policy acts
    meanwhile), then every container and the monitor of each state root used."""
    settings.BERTH_HOST_OFFLINE_AFTER = OFFLINE_AFTER
    settings.BERTH_OFFLINE_JOB_TIMEOUT = 3600
    handles = []

    def start(name: str, state_root=None):
        handle = berth_worker(name, state_root=state_root, env={"BERTH_HOST_OFFLINE_AFTER": str(OFFLINE_AFTER),
                                                                "BERTH_OFFLINE_JOB_TIMEOUT": "3600"})
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.discard()
    for root in {h.state_root for h in handles}:
        clean_state_root(Path(root))


@pytest.fixture
def watch(settings) -> Iterator[None]:
    """The offline watch, a pass every 0.2 s, in a thread as berth_run runs it; stopped and its DB connection
    closed at the end."""
    stopping = threading.Event()

    def run() -> None:
        try:
            Watch().run(0.2, stopping)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="test-offline-watch", daemon=True)
    thread.start()
    yield
    stopping.set()
    thread.join(timeout=30)


def client_of(user):
    from rest_framework.test import APIClient

    from containers.api.auth import create_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user, 'test')[1]}")
    return client


def test_a_host_killed_9_is_offline_its_containers_unknown_its_jobs_wait_or_time_out_then_the_truth_is_back(
        hosts, watch, wait_job, wait_for, transactional_db):
    from django.contrib.auth import get_user_model

    from workers.engine.containers import ContainerManager

    User = get_user_model()
    owner = User.objects.create_user("maker", password="pw-maker-123")
    api, root = client_of(owner), client_of(User.objects.create_superuser("root", password="pw-root-123"))
    a, b, c = hosts("off-a"), hosts("off-b"), hosts("off-c")
    for seeded in [wait_job(jobs.submit("image.seed", h.host, params={})) for h in (a, b, c)]:
        assert seeded.state == Job.State.SUCCEEDED, seeded.error

    def create(worker, name: str, start: bool = True, **fields) -> Container:
        row, job = services.create_container(owner, host=worker.host, image="busybox:latest", name=name,
                                             start=start, command=LONG, **fields)
        assert wait_job(job).state == Job.State.SUCCEEDED, job.error
        return row

    steady = create(a, "steady")
    survivor = create(b, "survivor", restart_policy="always")
    victim = create(b, "victim")
    later = create(b, "later", start=False)
    stuck = create(c, "stuck", start=False)

    def shown(row: Container) -> dict:
        return api.get(f"/api/v1/containers/{row.pk}").json()

    wait_for(lambda: all(shown(r)["state"] == "running" for r in (steady, survivor, victim)),
             what="three containers running")
    survivor_pid = ContainerManager(b.state_root).inspect(survivor.engine_id)["pid"]
    # c's admin wants jobs to give up quickly when it is down; b keeps the setting's hour.
    assert root.patch(f"/api/v1/hosts/{c.host.pk}", {"offline_job_timeout": 1}, format="json").status_code == 200

    b.kill9()
    c.kill9()
    last_b, last_c = b.host.last_heartbeat, c.host.last_heartbeat  # no heartbeat comes after these
    start_later = api.post(f"/api/v1/containers/{later.pk}/start")
    start_stuck = api.post(f"/api/v1/containers/{stuck.pk}/start")
    assert start_later.status_code == start_stuck.status_code == 202, start_later.content
    later_job, stuck_job = start_later.json()["id"], start_stuck.json()["id"]
    # While b is down its monitor keeps its containers; one of them dies meanwhile, which nobody can report.
    ContainerManager(b.state_root).kill(victim.engine_id, "SIGKILL")
    wait_for((b.state_root / "containers" / victim.engine_id / "exit.json").exists, what="the victim's exit")

    # Offline once the last heartbeat is OFFLINE_AFTER old: the first read after that says so.
    wait_for(lambda: timezone.now() > last_b + timedelta(seconds=OFFLINE_AFTER), what="b's offline time")
    host_b = api.get(f"/api/v1/hosts/{b.host.pk}").json()
    assert host_b["online"] is False and host_b["offline_reason"] == offline.reason(b.host)
    for row in (survivor, victim):
        assert (shown(row)["state"], shown(row)["last_known_state"]) == ("unknown", "running"), row.name
    assert shown(later)["state"] == "unknown"
    assert api.get("/api/v1/containers?state=unknown&host=off-b").json()["count"] == 3
    waiting = api.get(f"/api/v1/jobs/{later_job}").json()
    assert waiting["state"] == "queued"
    assert waiting["message"].startswith(f"waiting: host off-b is offline since "
                                         f"{offline.reason(b.host).split(' since ')[1]}; it fails at ")
    # c's job gives up after its host's second (the watch decides; no host is needed for that).
    wait_for(lambda: api.get(f"/api/v1/jobs/{stuck_job}").json()["state"] == "failed",
             what="the job queued for c to time out")
    failed = api.get(f"/api/v1/jobs/{stuck_job}").json()
    assert failed["error_code"] == "host_offline"
    assert failed["error"].startswith(f"host off-c is offline since {offline.reason(c.host).split(' since ')[1]}: "
                                      f"this job waited ") and "longer than the 1 s allowed" in failed["error"]
    assert failed["error_detail"]["code"] == "host_offline"
    assert last_c == c.host.last_heartbeat and api.get("/api/v1/jobs/" + str(later_job)).json()["state"] == "queued"
    # The host that stayed up is untouched.
    assert shown(steady)["state"] == "running"

    # b's worker comes back on the same state root: it reconciles and runs what waited for it.
    hosts("off-b", state_root=b.state_root)
    wait_for(lambda: api.get(f"/api/v1/jobs/{later_job}").json()["state"] == "succeeded",
             what="the waiting start to run once b is back")
    wait_for(lambda: shown(victim)["state"] == "exited", what="the victim's exit recorded by reconcile")
    assert shown(victim)["exit_code"] == 137
    wait_for(lambda: shown(later)["state"] == "running", what="later running")
    assert shown(survivor)["state"] == "running" and api.get(f"/api/v1/hosts/{b.host.pk}").json()["online"] is True
    # The restart-policy container was never started twice: the same process on b, its only row, on b, and no
    # other host's engine has it.
    assert ContainerManager(b.state_root).inspect(survivor.engine_id)["pid"] == survivor_pid
    assert list(Container.objects.filter(name="survivor").values_list("host__name", flat=True)) == ["off-b"]
    for other in (a, c):
        assert survivor.engine_id not in ContainerManager(other.state_root).known_ids()
    assert api.get(f"/api/v1/jobs/{stuck_job}").json()["state"] == "failed"
