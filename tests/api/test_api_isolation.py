"""Team A cannot see, act on, download or stream team B's things — not by guessing ids, not over WebSockets."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from containers.models import Container, Job
from tests.transfers import make_download
from webapp.asgi import application

pytestmark = pytest.mark.django_db


def names(response):
    assert response.status_code == 200, response.content[:300]
    return sorted(item.get("name") or item.get("kind") for item in response.json()["results"])


def test_lists_show_only_the_teams_things(world, api_client):
    a, b, root = api_client("operator"), api_client("outsider"), api_client("root")
    assert names(a.get("/api/v1/containers")) == ["web-a"]
    assert names(b.get("/api/v1/containers")) == ["web-b"]
    assert names(root.get("/api/v1/containers")) == ["web-a", "web-b"]
    assert names(a.get("/api/v1/images")) == ["app-a", "busybox"]
    assert names(b.get("/api/v1/images")) == ["app-b", "busybox"]
    assert [t["name"] for t in a.get("/api/v1/teams").json()["results"]] == ["team-a"]
    # filters cannot widen what is visible
    assert names(a.get(f"/api/v1/containers?team={world.team_b.pk}")) == []
    assert names(a.get("/api/v1/containers?owner=outsider")) == []
    assert names(a.get("/api/v1/containers?label=tier=web")) == ["web-a"]


def test_guessed_ids_of_team_b_answer_404_and_change_nothing(world, api_client, tmp_path, settings):
    settings.BERTH_TRANSFER_DIR = tmp_path
    host = world.host
    job_b = Job.objects.create(kind="container.export", host=host, target_type="container",
                               target_id=str(world.web_b.pk), requested_by=world.users["outsider"],
                               state="succeeded", result={"size": 16, "filename": "b.tar",
                                                          "content_type": "application/x-tar"})
    make_download(job_b, b"secret of team b")
    a = api_client("admin")  # even team A's admin
    before = (list(Container.objects.values()), Job.objects.count())
    b = world.web_b.pk
    for method, path in [("get", f"/api/v1/containers/{b}"), ("get", f"/api/v1/containers/{b}/logs"),
                         ("get", f"/api/v1/containers/{b}/logs?follow=1"),
                         ("post", f"/api/v1/containers/{b}/stop"), ("post", f"/api/v1/containers/{b}/export"),
                         ("delete", f"/api/v1/containers/{b}?force=1"), ("get", f"/api/v1/jobs/{job_b.pk}"),
                         ("get", f"/api/v1/jobs/{job_b.pk}/download"), ("post", f"/api/v1/jobs/{job_b.pk}/cancel"),
                         ("get", f"/api/v1/images/{world.image_b.pk}"),
                         ("post", f"/api/v1/images/{world.image_b.pk}/save"),
                         ("get", f"/api/v1/teams/{world.team_b.pk}/members")]:
        response = getattr(a, method)(path, {}, format="json") if method != "get" else a.get(path)
        assert response.status_code == 404, (method, path, response.status_code)
        assert b"secret" not in response.content and b"web-b" not in response.content
    assert (list(Container.objects.values()), Job.objects.count()) == before
    # a nonexistent id and an invisible one look the same
    assert a.post(f"/api/v1/containers/{b}/stop", {}, format="json").json() == \
        a.post("/api/v1/containers/987654/stop", {}, format="json").json()


def _ws_headers(user):
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"origin", b"http://127.0.0.1")]


async def _events_until(comm: WebsocketCommunicator, done, timeout: float = 60) -> list[dict]:
    """Job and container events received (host heartbeats skipped) up to and including the one `done` accepts."""
    got: list[dict] = []
    while True:
        event = await comm.receive_json_from(timeout=timeout)
        if event.get("type") in ("job", "container"):
            got.append(event)
            if done(event):
                return got


def _finished(job_pk: int):
    return lambda e: e["type"] == "job" and e["id"] == job_pk and e["state"] in Job.FINISHED_STATES


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
async def test_events_websocket_only_delivers_own_team(world, live_redis, berth_worker):
    """As in production: the events come from the services (job queued) and from a real worker running the
    jobs (job running/failed, container state), over the Redis channel layer. Team B's admin sees B's; team
    A's viewer sees A's, never B's."""
    from containers import services

    await sync_to_async(berth_worker)(world.host.name)  # a real worker for the world's host
    socks = {}
    for who in ("viewer", "outsider"):
        headers = await sync_to_async(_ws_headers)(world.users[who])
        socks[who] = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await socks[who].connect()
        assert connected
    try:
        # B's stop, through the service; the worker finds no such container on its host and says so.
        job_b = await sync_to_async(services.container_action)(world.users["outsider"], world.web_b, "stop")
        seen_b = await _events_until(socks["outsider"], _finished(job_b.pk))
        # The control: B's own admin got B's events, from both processes (queued here, failed on the host).
        assert {e["state"] for e in seen_b if e["type"] == "job" and e["id"] == job_b.pk} >= {"queued", "failed"}
        assert any(e["type"] == "container" and e["id"] == world.web_b.pk for e in seen_b), seen_b
        # The group sends to every socket at once: B's events are already in the viewer's channel, before A's.
        job_a = await sync_to_async(services.container_action)(world.users["operator"], world.web_a, "stop")
        seen_a = await _events_until(socks["viewer"], _finished(job_a.pk))
        assert {e["state"] for e in seen_a if e["type"] == "job" and e["id"] == job_a.pk} >= {"queued", "failed"}
        assert any(e["type"] == "container" and e["id"] == world.web_a.pk for e in seen_a), seen_a
        b_ids = {("job", job_b.pk), ("container", world.web_b.pk)}
        assert [e for e in seen_a if (e["type"], e["id"]) in b_ids] == []
        assert all(e.get("owner_id") != world.users["outsider"].pk for e in seen_a)
    finally:
        for comm in socks.values():
            await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_logs_websocket_of_team_b_is_closed_4404(world, live_redis):
    headers = await sync_to_async(_ws_headers)(world.users["admin"])
    comm = WebsocketCommunicator(application, f"/ws/containers/{world.web_b.pk}/logs/", headers=headers)
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed with the reason
    message = await comm.receive_output(timeout=10)
    while message["type"] != "websocket.close":
        message = await comm.receive_output(timeout=10)
    assert message["code"] == 4404
    await comm.disconnect()
