"""A host whose heartbeat stopped (issue 18), without processes: what the API and the dashboard say about its
containers and its queued jobs, which jobs its timeout fails and when, and the control plane's watch. The
end-to-end version, with real workers killed, is tests/e2e/test_offline_hosts.py. Each test names the one-line
change of the product it catches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from containers import events, jobs, offline
from containers.models import AuditEvent, Container, Host, Job
from containers.offline_watch import Watch

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def gone_host(world, **fields) -> tuple[Host, Container]:
    """A second host, silent for an hour, with a running container of team A's owner."""
    host = Host.objects.create(name="api-gone", cpus=2, last_heartbeat=timezone.now() - timedelta(hours=1),
                               **fields)
    row = Container.objects.create(name="web-gone", host=host, image=world.base, image_ref="busybox:latest",
                                   owner=world.users["owner"], team=world.team_a, state="running")
    return host, row


def queued(host: Host, owner, created: datetime, target=None) -> Job:
    job = jobs.submit("container.start", host, requested_by=owner, target=target)  # no worker: it stays queued
    Job.objects.filter(pk=job.pk).update(created=created)
    job.refresh_from_db()
    return job


def test_containers_of_an_offline_host_show_unknown_in_the_api_and_the_dashboard(world, api_client):
    # mutant: offline.shown_state `if container.state != REMOVING and not container.host.online:` → `if False:`
    host, gone = gone_host(world)
    client = api_client("owner")
    shown = client.get(f"/api/v1/containers/{gone.pk}").json()
    assert (shown["state"], shown["last_known_state"], shown["host_name"]) == ("unknown", "running", "api-gone")
    assert client.get(f"/api/v1/containers/{world.web_a.pk}").json()["state"] == "running"  # its host is online

    def names(state: str) -> list[str]:
        return sorted(c["name"] for c in client.get(f"/api/v1/containers?state={state}").json()["results"])

    assert names("unknown") == ["web-gone"] and names("running") == ["web-a"] and names("running,unknown") == [
        "web-a", "web-gone"]
    about = client.get(f"/api/v1/hosts/{host.pk}").json()
    assert about["online"] is False
    assert about["offline_reason"] == offline.reason(host) and about["offline_reason"].startswith(
        "host api-gone is offline since ")
    assert client.get(f"/api/v1/hosts/{world.host.pk}").json()["offline_reason"] is None
    # The dashboard: the badge says unknown (and why, on hover); live resyncs say the same.
    page = Client()
    page.force_login(world.users["owner"])
    html = page.get("/containers/").content.decode()
    assert ('<span class="badge unknown" data-field="state" title="its host api-gone is offline; last known '
            'state: running">unknown</span>') in html
    assert '<span class="badge running" data-field="state">running</span>' in html  # web-a
    states = page.get(f"/containers/state/?ids={gone.pk},{world.web_a.pk}").json()["containers"]
    assert [(c["state"], c["last_known_state"]) for c in states] == [("unknown", "running"), ("running", "running")]


def test_a_job_queued_for_an_offline_host_says_why_and_until_when(world, api_client, settings):
    # mutant: offline.job_message `if job.state not in (QUEUED, RUNNING) or job.host.online:` → `if True:`
    settings.BERTH_OFFLINE_JOB_TIMEOUT = 600
    host, gone = gone_host(world)
    Host.objects.filter(pk=host.pk).update(last_heartbeat=NOON)
    job = queued(host, world.users["owner"], NOON + timedelta(seconds=5), target=gone)
    client = api_client("owner")
    # Offline 15 s after the last heartbeat; the job waits 600 s from then.
    assert client.get(f"/api/v1/jobs/{job.pk}").json()["message"] == (
        "waiting: host api-gone is offline since 2026-01-01 12:00:00 UTC; it fails at 2026-01-01 12:10:15 UTC "
        "unless the host is back")
    Host.objects.filter(pk=host.pk).update(offline_job_timeout=0)  # this host's own rule: wait for it
    assert client.get(f"/api/v1/jobs/{job.pk}").json()["message"] == (
        "waiting: host api-gone is offline since 2026-01-01 12:00:00 UTC; it runs when the host is back")
    page = Client()
    page.force_login(world.users["owner"])
    assert "it runs when the host is back" in page.get(f"/jobs/{job.pk}/").content.decode()
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, message="starting")  # its worker died with it
    assert client.get(f"/api/v1/jobs/{job.pk}").json()["message"] == (
        "host api-gone is offline since 2026-01-01 12:00:00 UTC: how this job ends is known when the host is back")
    # A job for an online host says nothing of the kind.
    assert client.get(f"/api/v1/jobs/{queued(world.host, world.users['owner'], NOON).pk}").json()["message"] == ""


def test_the_timeout_fails_only_queued_jobs_past_their_deadline_and_the_worker_then_skips_them(world, settings):
    # mutant: offline.job_timeout `if host.offline_job_timeout is not None:` → `if False:` (the host's own
    # timeout ignored: the setting's 600 s keeps every job waiting)
    from workers import agent
    from workers.tasks import claim

    settings.BERTH_OFFLINE_JOB_TIMEOUT = 600
    host, gone = gone_host(world, offline_job_timeout=60)
    Host.objects.filter(pk=host.pk).update(last_heartbeat=NOON)
    host.refresh_from_db()
    owner = world.users["owner"]
    old = queued(host, owner, NOON - timedelta(hours=1))  # queued before the host went: fails at 12:01:15
    fresh = queued(host, owner, NOON + timedelta(minutes=5))  # queued later: fails at 12:06:00
    running = queued(host, owner, NOON - timedelta(hours=1))
    Job.objects.filter(pk=running.pk).update(state=Job.State.RUNNING)

    assert offline.expire_jobs(host, now=NOON + timedelta(minutes=1)) == []
    assert offline.expire_jobs(host, now=NOON + timedelta(minutes=3)) == [old.pk]
    old.refresh_from_db()
    assert (old.state, old.error_code, old.error) == (
        "failed", "host_offline", "host api-gone is offline since 2026-01-01 12:00:00 UTC: this job waited 165 s "
        "for it, longer than the 60 s allowed (the host's offline job timeout), and was not run")
    assert claim(old.pk, agent.process_token()) is None, "a failed job is never run by the host coming back"
    assert offline.expire_jobs(host, now=NOON + timedelta(minutes=7)) == [fresh.pk]
    assert Job.objects.get(pk=running.pk).state == "running"  # its worker decides its fate
    # Never for an online host, nor with a timeout of 0.
    later = queued(world.host, owner, NOON)
    assert offline.expire_jobs(world.host) == []
    Host.objects.filter(pk=host.pk).update(offline_job_timeout=0)
    host.refresh_from_db()
    waiting = queued(host, owner, NOON)
    assert offline.expire_jobs(host) == []
    assert {j.pk: j.state for j in Job.objects.filter(pk__in=[later.pk, waiting.pk])} == {
        later.pk: "queued", waiting.pk: "queued"}


def test_admins_set_a_hosts_offline_job_timeout(world, api_client):
    # mutant: services.update_host `host.save(update_fields=["offline_job_timeout"])` → removed
    root = api_client("root")
    url = f"/api/v1/hosts/{world.host.pk}"
    done = root.patch(url, {"offline_job_timeout": 30}, format="json")
    assert done.status_code == 200 and done.json()["offline_job_timeout"] == 30
    assert Host.objects.get(pk=world.host.pk).offline_job_timeout == 30
    event = AuditEvent.objects.get(action="host.offline_job_timeout")
    assert event.detail == {"offline_job_timeout": 30, "before": None} and event.actor == world.users["root"]
    assert root.patch(url, {"offline_job_timeout": None}, format="json").json()["offline_job_timeout"] is None
    bad = root.patch(url, {"offline_job_timeout": -1}, format="json")
    assert bad.status_code == 400 and "offline_job_timeout" in bad.json()["error"]["fields"]
    assert api_client("admin").patch(url, {"offline_job_timeout": 5}, format="json").status_code == 403
    assert Host.objects.get(pk=world.host.pk).offline_job_timeout is None


def test_the_watch_works_with_no_host_alive_fails_each_job_once_and_tells_dashboards(world, settings):
    # mutant: offline_watch.Watch.sweep `offline.publish_all(host)` (going offline) → removed
    settings.BERTH_OFFLINE_JOB_TIMEOUT = 60
    Host.objects.update(last_heartbeat=timezone.now() - timedelta(hours=1))  # every host is down
    job = queued(world.host, world.users["owner"], timezone.now() - timedelta(minutes=30))
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.GROUP, channel)

    watch = Watch()
    assert watch.sweep() == [job.pk]
    assert watch.sweep() == [], "a job is failed once"
    events.publish({"type": "end"})  # FIFO: everything the sweeps sent comes before it
    seen = []
    while (event := async_to_sync(layer.receive)(channel)["event"])["type"] != "end":
        seen.append((event["type"], event.get("name") or event.get("kind"), event.get("state")))
    assert seen == [("host", "api-node", None), ("container", "web-a", "unknown"),
                    ("container", "web-b", "unknown"), ("job", "container.start", "queued"),
                    ("job", "container.start", "failed")]
    job.refresh_from_db()
    assert job.state == "failed" and job.error_code == "host_offline"


def test_a_returning_worker_fails_what_waited_too_long_before_it_beats(world, settings):
    # mutant: workers/agent.py expire_waited_jobs `return offline.expire_jobs(host) if host is not None else []`
    # → `return []`
    from workers import agent

    settings.BERTH_OFFLINE_JOB_TIMEOUT = 60
    host, _ = gone_host(world)
    overdue = queued(host, world.users["owner"], timezone.now() - timedelta(minutes=30))
    recent = queued(host, world.users["owner"], timezone.now())
    assert agent.expire_waited_jobs("api-gone") == [overdue.pk]
    assert agent.expire_waited_jobs("no-such-host") == []
    assert {j.pk: j.state for j in Job.objects.filter(host=host)} == {overdue.pk: "failed", recent.pk: "queued"}
