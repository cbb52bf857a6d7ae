"""Signed-out users get the login page, never data; pages show each user what is theirs."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from containers import jobs
from containers.models import AuditEvent, Host, Job
from webapp.asgi import application

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    return Host.objects.create(name="node-a", kernel="6.1.0-test", cgroup_version="v2", cpus=4,
                               memory_bytes=8 << 30, runtimes=["berth", "runc"], last_heartbeat=timezone.now())


@pytest.fixture
def users():
    User = get_user_model()
    return (User.objects.create_user("alice", password="pw-alice-123"),
            User.objects.create_user("bob", password="pw-bob-123"),
            User.objects.create_superuser("root", password="pw-root-123"))


@pytest.mark.parametrize("path", ["/", "/hosts/", "/jobs/", "/jobs/1/"])
def test_anonymous_is_sent_to_login(client, host, path):
    Job.objects.create(kind="host.probe", host=host)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")
    page = client.get(response["Location"])
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="password"' in body
    assert "node-a" not in body and "host.probe" not in body


def test_anonymous_probe_post_is_refused(client, host):
    response = client.post(f"/hosts/{host.pk}/probe/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Job.objects.exists()


def test_login_then_hosts_page_shows_facts(client, host, users):
    response = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302
    page = client.get("/hosts/")
    body = page.content.decode()
    assert "node-a" in body and "6.1.0-test" in body and "online" in body and "runc" in body


def test_stale_host_shows_offline(client, host, users, settings):
    settings.BERTH_HOST_OFFLINE_AFTER = 15
    Host.objects.filter(pk=host.pk).update(last_heartbeat=timezone.now() - timezone.timedelta(seconds=60))
    client.force_login(users[0])
    body = client.get("/hosts/").content.decode()
    assert '<span class="badge off" data-field="online">offline</span>' in body


def test_jobs_page_lists_only_own_jobs_except_for_superusers(host, users):
    alice, bob, root = users
    mine = Job.objects.create(kind="kind.alice", host=host, requested_by=alice)
    theirs = Job.objects.create(kind="kind.bob", host=host, requested_by=bob)
    client = Client()
    client.force_login(alice)
    body = client.get("/jobs/").content.decode()
    assert "kind.alice" in body and "kind.bob" not in body
    assert client.get(f"/jobs/{mine.pk}/").status_code == 200
    assert client.get(f"/jobs/{theirs.pk}/").status_code == 404
    client.force_login(root)
    body = client.get("/jobs/").content.decode()
    assert "kind.alice" in body and "kind.bob" in body


def test_probe_button_queues_a_job_for_the_host(client, host, users, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("webapp.celery.app.send_task", lambda name, args, queue, **kw: sent.append((name, args, queue)))
    root = users[2]
    client.force_login(root)
    assert "Probe now" in client.get("/hosts/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/hosts/{host.pk}/probe/")
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.kind, job.host, job.requested_by, job.target_type) == ("host.probe", host, root, "host")
    assert sent == [(jobs.RUN_JOB_TASK, [job.pk], "host.node-a")]
    event = AuditEvent.objects.get(action="host.probe")  # through the service: audited like every action
    assert (event.actor, event.result, event.target_type, event.target_id) == (root, "ok", "host", str(host.pk))


def test_probe_by_a_non_operator_is_refused_and_audited(client, host, users, monkeypatch):
    # hosts are shared by every tenant: a tenant may see one, not make it work (the view once queued the job)
    sent = []
    monkeypatch.setattr("webapp.celery.app.send_task", lambda name, args, queue, **kw: sent.append((name, args, queue)))
    alice = users[0]
    client.force_login(alice)
    assert "Probe now" not in client.get("/hosts/").content.decode()
    response = client.post(f"/hosts/{host.pk}/probe/")
    assert response.status_code == 403
    assert "you may not probe this host" in response.content.decode()
    assert not Job.objects.exists() and sent == []
    event = AuditEvent.objects.get(action="host.probe")
    assert (event.actor, event.result, event.status_code, event.target_id) == (alice, "denied", 403, str(host.pk))


async def test_static_files_are_served_by_the_asgi_app():
    # DEBUG is off; the dashboard must still get its css/js from the ASGI app.
    from asgiref.testing import ApplicationCommunicator

    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/static/js/events.js",
             "raw_path": b"/static/js/events.js", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
             "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555)}
    comm = ApplicationCommunicator(application, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(timeout=5)
    assert start["status"] == 200
    body = b""
    while True:
        chunk = await comm.receive_output(timeout=5)
        body += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    assert b"/ws/events/" in body


async def test_websocket_refuses_anonymous():
    comm = WebsocketCommunicator(application, "/ws/events/", headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await comm.connect()
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}
    await comm.wait()


async def test_websocket_refuses_foreign_origin():
    comm = WebsocketCommunicator(application, "/ws/events/", headers=[(b"origin", b"http://evil.example")])
    connected, _ = await comm.connect()
    assert not connected
