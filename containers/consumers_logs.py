"""`/ws/containers/<pk>/logs/?tail=N`: a container's last lines, then its live lines.

Messages (iface §6): {"type": "lines", "lines": [{"id", "stream", "time", "log"}], "dropped": int,
"mode": "live"|"batched"|"sampled", "rate": lines/s written by the container (recent), "tail": bool}.

Pacing: at most one "lines" message per TICK. The first line after a quiet spell goes out at once
(low latency); lines arriving faster are coalesced into the next tick's message ("batched"). When
more than MAX_PER_TICK lines wait (over 2,000 lines/s: more than a browser should render), the
reader skips to the newest SAMPLE_PER_TICK lines and tells how many it left out ("sampled"); the
full log stays on disk for the download. Sampled mode is held for HOLD_SAMPLED seconds after the
last drop so the notice does not flicker.

Close codes: 4401 not signed in, 4404 no such container or not visible, 4403 visible but not
allowed ("container.logs"), 4400 bad query (an {"type": "error"} message says why first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from urllib.parse import parse_qs

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import logstream
from .consumers import CLOSE_UNAUTHENTICATED, NO_CHANNEL_LAYER

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

TICK = 0.05  # seconds between messages while lines keep coming
MAX_PER_TICK = 100  # more waiting than this at a tick: sample (100 per 50 ms = 2,000 lines/s)
SAMPLE_PER_TICK = 50  # lines sent per tick in sampled mode (1,000 lines/s)
HOLD_SAMPLED = 2.0  # seconds sampled mode stays after the last dropped line
BATCHED_RATE = 50.0  # lines/s from which the view is announced as batched
DEFAULT_TAIL = 200
MAX_TAIL = 5000
BLOCK_MS = 1000
RECHECK = 5.0  # seconds between permission checks while following: one who loses the role is cut off within it
TAIL_CHUNK = 1000  # replayed lines per message


def parse_tail(query_string: bytes) -> int:
    """The `tail` query parameter: 0..MAX_TAIL (default DEFAULT_TAIL); ValueError with a reason."""
    values = parse_qs(query_string.decode("latin-1")).get("tail")
    if not values:
        return DEFAULT_TAIL
    raw = values[-1].strip()
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"tail must be a whole number from 0 to {MAX_TAIL}, not {raw[:20]!r}")
    n = int(raw)
    if n > MAX_TAIL:
        raise ValueError(f"tail must be a whole number from 0 to {MAX_TAIL}, not {n}")
    return n


@database_sync_to_async
def _authorize(user, pk: int):
    """(container, close code or None). Missing and invisible containers look the same (4404)."""
    from . import permissions
    from .models import Container

    container = Container.objects.filter(pk=pk).select_related("host").first()
    if container is None:
        return None, CLOSE_NOT_FOUND
    try:
        permissions.check(user, "container.logs", container)
    except permissions.NotVisible:
        return None, CLOSE_NOT_FOUND
    except permissions.Forbidden:
        return None, CLOSE_FORBIDDEN
    return container, None


class RateMeter:
    """Lines/s written by the container over the last ~second, from the entries-added counter."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> float:
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now - t0 >= 0.05 else 0.0


class ContainerLogsConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        self.task: asyncio.Task | None = None
        self.reader: logstream.StreamReader | None = None
        user = self.scope.get("user")
        # Accept then close, so browsers see the application's close code.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            tail_n = parse_tail(self.scope.get("query_string", b""))
        except ValueError as exc:
            await self.send_json({"type": "error", "message": str(exc)})
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        container, code = await _authorize(user, self.pk)
        if code is not None:
            await self.close(code=code)
            return
        self.reader = logstream.StreamReader(container.engine_id)
        self.task = asyncio.create_task(self.pump(tail_n))

    async def disconnect(self, code: int) -> None:
        # Stop following as soon as the socket is gone: cancel the reader's blocking XREAD.
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        if self.reader is not None:
            await self.reader.close()
            self.reader = None

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def send_lines(self, lines: list[dict], *, dropped: int = 0, mode: str = "live",
                         rate: float = 0.0, tail: bool = False) -> None:
        await self.send_json({"type": "lines", "lines": lines, "dropped": dropped, "mode": mode,
                              "rate": round(rate), "tail": tail})

    async def pump(self, tail_n: int) -> None:
        try:
            await self._pump(tail_n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the socket must learn that following stopped
            log.warning("logs stream for %s failed: %r", self.reader and self.reader.key, exc,
                        exc_info=not isinstance(exc, redis.RedisError))
            await self.send_json({"type": "error", "message": "the live log stream is unavailable; "
                                  "download the full log instead"})
            await self.close(code=1011)

    async def _pump(self, tail_n: int) -> None:
        reader = self.reader
        assert reader is not None
        lines = await reader.start(tail_n)
        for i in range(0, len(lines), TAIL_CHUNK):
            await self.send_lines(lines[i:i + TAIL_CHUNK], tail=True)
        if not lines:
            await self.send_lines([], tail=True)  # the client knows the replay is over
        meter = RateMeter()
        last_send = 0.0
        next_check = time.monotonic() + RECHECK
        sampled_until = 0.0
        mode = "live"
        while True:
            wait = last_send + TICK - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.monotonic() >= next_check:
                # Someone may have lost the role (or the container) since the socket opened.
                _, code = await _authorize(self.scope["user"], self.pk)
                if code is not None:
                    await self.close(code=code)
                    return
                next_check = time.monotonic() + RECHECK
            waiting = await reader.backlog()
            now = time.monotonic()
            rate = meter.add(now, reader.added_seen + waiting)
            dropped = 0
            if waiting > MAX_PER_TICK:
                batch, dropped = await reader.skip_to_latest(SAMPLE_PER_TICK)
            elif waiting > 0:
                batch = await reader.read(waiting)
            else:
                # Quiet: block until a line comes, then send it at once.
                batch = await reader.read(MAX_PER_TICK, block_ms=BLOCK_MS)
                if not batch and not reader.skipped_pending():
                    if mode != "live" and time.monotonic() >= sampled_until:
                        mode = "live"  # the flood is over: say so even without lines
                        await self.send_lines([], mode=mode)
                    continue
                now = time.monotonic()
                rate = meter.add(now, reader.added_seen)
            dropped += reader.take_skipped()  # left out by the host's monitor (it samples a flood too)
            if dropped:
                sampled_until = now + HOLD_SAMPLED
            if now < sampled_until:
                mode = "sampled"
            else:
                mode = "batched" if rate >= BATCHED_RATE else "live"
            if len(batch) > SAMPLE_PER_TICK and mode == "sampled":
                # Still holding sampled mode: keep the browser's share the same.
                dropped += len(batch) - SAMPLE_PER_TICK
                batch = batch[-SAMPLE_PER_TICK:]
            await self.send_lines(batch, dropped=dropped, mode=mode, rate=rate)
            last_send = time.monotonic()
