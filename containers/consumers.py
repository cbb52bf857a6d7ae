"""WebSocket consumers."""

from __future__ import annotations

import asyncio
import logging

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import events

log = logging.getLogger(__name__)

# Close code for "not signed in" (4000-4999 are for applications); the dashboard's JS redirects to login.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_LAYER_AWAY = 1011  # the channel layer's Redis did not answer: try again later
LAYER_TIMEOUT = 5.0  # seconds a join of the events group may take before the socket is closed with 1011
# channel_layer_alias of a socket nothing is sent to by group: no per-socket BZPOPMIN loop on Redis (one connection
# fewer per viewer, and no layer task to wait on when Redis restarts). An unconfigured alias gives None
# (channels.layers.get_channel_layer).
NO_CHANNEL_LAYER = None


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events/`: job, container and host events as JSON, only those the user may see."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept then close, so that browsers see the 4401 code instead of a bare handshake failure.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Joined before the accept: the page resyncs when its socket opens, and an event sent between that
        # open and a later join would be lost for good (a state summary stuck on "running"). But the handshake
        # never hangs on the layer: a browser opens one WebSocket to a server at a time (RFC 6455 4.1), so a
        # hung /ws/events/ handshake would hold back the page's log view too. Redis away or slow: accepted, then
        # closed with 1011, and the page retries with back-off.
        try:
            await asyncio.wait_for(self.channel_layer.group_add(events.GROUP, self.channel_name), LAYER_TIMEOUT)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            log.warning("events socket: channel layer unavailable: %r", exc)
            await self.accept()
            await self.close(code=CLOSE_LAYER_AWAY)
            return
        self.user = user
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "user", None) is not None:
            try:
                await self.channel_layer.group_discard(events.GROUP, self.channel_name)
            except redis.RedisError:  # gone with Redis; its membership expires (channels_redis group_expiry)
                pass

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def berth_event(self, message: dict) -> None:
        event = message["event"]
        # visible_to may read team memberships and job targets: database work, so off the event loop.
        if await database_sync_to_async(events.visible_to)(self.user, event):
            await self.send_json(event)
