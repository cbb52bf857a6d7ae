"""Team A cannot see, act on, download or stream team B's things — not by guessing ids, not over WebSockets."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from containers import events
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


@pytest.mark.django_db(transaction=True)
async def test_events_websocket_only_delivers_own_team(world, live_redis):
    """Over the Redis channel layer, as in production: team A's viewer gets A's events, never B's."""
    headers = await sync_to_async(_ws_headers)(world.users["viewer"])
    comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    try:
        layer = get_channel_layer()

        async def send(event):
            await layer.group_send(events.GROUP, {"type": "berth.event", "event": event})

        job_b = await sync_to_async(Job.objects.create)(kind="container.stop", host=world.host,
                                                        target_type="container", target_id=str(world.web_b.pk),
                                                        requested_by=world.users["outsider"])
        await send(await sync_to_async(events.container_event)(world.web_b))
        await send(await sync_to_async(events.job_event)(job_b))
        await send(await sync_to_async(events.container_event)(world.web_a))
        got = await comm.receive_json_from(timeout=10)
        assert got["type"] == "container" and got["name"] == "web-a"
        assert await comm.receive_nothing(timeout=0.5)
    finally:
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
