"""Per-user delivery of events over /ws/events/ (in-memory channel layer; no cross-process needed)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from containers import events
from webapp.asgi import application


def make_user(name: str, superuser: bool = False):
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(name, password="pw-" + name + "-123")
    return User.objects.create_user(name, password="pw-" + name + "-123")


def cookie_for(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://127.0.0.1")]


@pytest.mark.django_db
def test_visible_to_rules():
    alice, bob, root = make_user("alice"), make_user("bob"), make_user("root", superuser=True)
    job = {"type": "job", "id": 1, "owner_id": alice.pk}
    assert events.visible_to(alice, job)
    assert not events.visible_to(bob, job)
    assert events.visible_to(root, job)
    assert not events.visible_to(AnonymousUser(), job)
    assert not events.visible_to(bob, {"type": "job", "id": 2, "owner_id": None})
    assert events.visible_to(bob, {"type": "host", "id": 1, "name": "h"})


@pytest.mark.django_db(transaction=True)
async def test_consumer_delivers_only_what_the_user_may_see():
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")

    headers = await sync_to_async(cookie_for)(alice)
    comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    layer = get_channel_layer()
    send = lambda e: layer.group_send(events.GROUP, {"type": "berth.event", "event": e})  # noqa: E731
    await send({"type": "job", "id": 10, "owner_id": bob.pk, "state": "running"})
    await send({"type": "job", "id": 11, "owner_id": alice.pk, "state": "running"})
    # Bob's event went first into the same channel (FIFO): alice's arriving first shows it was handled and
    # dropped, with no "nothing came within 0.3 s" wait (which a slow consumer would pass wrongly).
    assert await comm.receive_json_from(timeout=5) == {"type": "job", "id": 11, "owner_id": alice.pk,
                                                       "state": "running"}
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from(timeout=5) == {"type": "pong"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_event_sent_the_moment_the_socket_opens_is_delivered(monkeypatch):
    """Fresh-clone run 24: the page resyncs when its socket opens; a socket that opened before it had joined
    the group lost an exit sent in between, and the list's summary stayed "2 running" for good. Here the join
    is slow (as a loaded Redis is) and the event goes out as soon as the handshake completes."""
    alice = await sync_to_async(make_user)("alice")
    layer = get_channel_layer()
    join = layer.group_add

    async def slow_join(group: str, channel: str) -> None:
        await asyncio.sleep(0.3)
        await join(group, channel)

    monkeypatch.setattr(layer, "group_add", slow_join)
    headers = await sync_to_async(cookie_for)(alice)
    comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    exited = {"type": "container", "id": 7, "owner_id": alice.pk, "state": "exited"}
    await layer.group_send(events.GROUP, {"type": "berth.event", "event": exited})
    assert await comm.receive_json_from(timeout=5) == exited
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_channel_layer_away_completes_the_handshake_then_closes_1011(settings):
    """The handshake never waits on Redis: a browser opens one WebSocket to a server at a time, so a hung
    /ws/events/ handshake would also hold back the page's log view. Accepted, then closed with 1011 (retry)."""
    from tests.support import dead_port

    alice = await sync_to_async(make_user)("alice")

    headers = await sync_to_async(cookie_for)(alice)
    with dead_port() as port:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0"}]}}}
        comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await comm.connect(timeout=10)
        assert connected
        # Read the queue itself: the layer's own receive loop then fails too, and the communicator would raise
        # that before handing out the close already sent (a server drops the connection after it either way).
        closed = await asyncio.wait_for(comm.output_queue.get(), 10)
        assert closed == {"type": "websocket.close", "code": 1011}
        await asyncio.wait_for(asyncio.wait([comm.future]), 10)
        assert comm.future.cancelled() or comm.future.exception() is None \
            or isinstance(comm.future.exception(), redis.RedisError)
