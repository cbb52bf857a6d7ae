"""Container log lines from the per-container capped Redis stream the host's monitor appends to.

The monitor XADDs {"stream": "stdout"|"stderr", "time": RFC 3339 nano, "log": "text\\n"} to
`berth:logs:<engine id>` (capped at ~10,000 entries). Disk (the json-file log on the host) stays
the truth; the stream is the live window any web process can replay and follow.

- `tail` / `since`: synchronous look-ups (views, the API).
- `follow`: an async generator over XREAD BLOCK (the API's follow=1, simple consumers).
- `StreamReader`: the async reader behind the logs WebSocket; it knows how many entries wait
  unread (from the stream's entries-added counter), so a flood can be skipped over to the newest
  lines with an exact count of the lines left out of the live view.

Entries are returned as dicts {"id", "stream", "time", "log"}; `follow` yields (id, fields) pairs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from workers.engine.monitor.redis_sink import skipped_key as _monitor_skipped_key
from workers.engine.monitor.redis_sink import stream_key as _monitor_stream_key

ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_clients: dict[str, redis.Redis] = {}


def stream_key(engine_id: str) -> str:
    """The Redis key the monitor writes a container's lines to (one definition: the monitor's)."""
    return _monitor_stream_key(engine_id)


def _url(url: str | None) -> str:
    return url or settings.REDIS_URL


def sync_client(url: str | None = None) -> redis.Redis:
    """A shared synchronous client per URL (redis-py pools connections and is thread-safe)."""
    url = _url(url)
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    return client


def async_client(url: str | None = None, name: str | None = None) -> aioredis.Redis:
    """A new asyncio client; the caller closes it (`await client.aclose()`). One per follower,
    because a blocking XREAD holds its connection. `name` shows in Redis' CLIENT LIST."""
    # A socket timeout well over any XREAD BLOCK used here (redis-py's default is 5 s).
    return aioredis.Redis.from_url(_url(url), decode_responses=True, client_name=name, socket_timeout=30)


def reader_client_name(engine_id: str) -> str:
    """CLIENT SETNAME of the connections following a container's lines (spaces are not allowed)."""
    return f"berth-logs:{engine_id[:64]}"


def entry(entry_id: str, fields: dict[str, str]) -> dict[str, str]:
    return {"id": entry_id, "stream": fields.get("stream", "stdout"), "time": fields.get("time", ""),
            "log": fields.get("log", "")}


def _check_id(last_id: str) -> str:
    if last_id not in ("$", "0") and not ENTRY_ID.match(last_id):
        raise ValueError(f"not a stream entry id: {last_id!r} (expected <milliseconds>-<sequence>)")
    return last_id


def tail(engine_id: str, n: int = 200, *, url: str | None = None) -> list[dict[str, str]]:
    """The last `n` lines (oldest first); [] when the container has logged nothing (yet)."""
    if n <= 0:
        return []
    rows = sync_client(url).xrevrange(stream_key(engine_id), "+", "-", count=n)
    return [entry(i, f) for i, f in reversed(rows)]


def since(engine_id: str, last_id: str, *, count: int | None = None, url: str | None = None) -> list[dict[str, str]]:
    """Lines after entry `last_id` (exclusive), oldest first; at most `count` of them."""
    last_id = _check_id(last_id)
    if last_id == "$":
        return []
    rows = sync_client(url).xrange(stream_key(engine_id), f"({last_id}" if last_id != "0" else "-", "+", count=count)
    return [entry(i, f) for i, f in rows]


async def follow(engine_id: str, last_id: str = "$", block_ms: int = 1000, batch: int = 1000, *,
                 url: str | None = None) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
    """Yield lists of (entry id, fields) as lines arrive after `last_id` ("$": only new ones).

    Yields [] each time `block_ms` passes without a line, so callers can send keep-alives or
    notice that their client left. Stops when the caller stops iterating (or cancels)."""
    last_id = _check_id(last_id)
    key = stream_key(engine_id)
    client = async_client(url, reader_client_name(engine_id))
    try:
        if last_id == "$":
            # Resolve "$" once: XREAD with "$" in a loop would miss lines written between calls.
            last_id = await _last_generated_id(client, key)
        while True:
            reply = await client.xread({key: last_id}, count=batch, block=block_ms)
            rows = reply[0][1] if reply else []
            if rows:
                last_id = rows[-1][0]
            yield rows
    finally:
        await client.aclose()


async def _last_generated_id(client: aioredis.Redis, key: str) -> str:
    try:
        info = await client.xinfo_stream(key)
    except redis.ResponseError:  # no such key: nothing logged yet
        return "0-0"
    return info["last-generated-id"]


def _added(info: Any) -> tuple[int, str]:
    """(entries ever added, last generated id) from an XINFO STREAM reply, or (0, "0-0") if absent."""
    if isinstance(info, Exception) or not info:
        return 0, "0-0"
    return int(info.get("entries-added", 0)), info.get("last-generated-id", "0-0")


class StreamReader:
    """Reads one container's stream for a live view, counting what it has not read.

    `added_seen` is the stream's entries-added counter as of `last_id`: the number of entries that
    wait unread is the counter now minus `added_seen`. Entries the cap trimmed before they were read
    count as unread, so they are reported as dropped by the next `skip_to_latest`.
    """

    def __init__(self, engine_id: str, *, url: str | None = None):
        self.key = stream_key(engine_id)
        self.skipped_key = _monitor_skipped_key(engine_id)
        self.client = async_client(url, reader_client_name(engine_id))
        self.last_id = "0-0"
        self.added_seen = 0
        self.skipped_seen = 0  # the monitor's count of lines it left out of the stream, as of the last look
        self._skipped_new = 0

    async def close(self) -> None:
        await self.client.aclose()

    async def _snapshot_latest(self, n: int) -> tuple[list[dict[str, str]], int, str]:
        """Atomically: the newest `n` entries, the entries-added counter and the last id."""
        pipe = self.client.pipeline(transaction=True)  # MULTI/EXEC: the count matches the entries
        pipe.xrevrange(self.key, "+", "-", count=max(n, 1))
        pipe.xinfo_stream(self.key)
        rows, info = await pipe.execute(raise_on_error=False)
        added, last = _added(info)
        if isinstance(rows, Exception):
            rows = []
        rows = rows[:n] if n > 0 else []
        return [entry(i, f) for i, f in reversed(rows)], added, last

    async def start(self, tail_n: int) -> list[dict[str, str]]:
        """Position after the current end of the stream; returns the last `tail_n` lines."""
        lines, self.added_seen, self.last_id = await self._snapshot_latest(tail_n)
        self.skipped_seen = int(await self.client.get(self.skipped_key) or 0)
        return lines

    def skipped_pending(self) -> bool:
        return self._skipped_new > 0

    def take_skipped(self) -> int:
        """Lines the monitor left out of the stream since the last call (counted at each `backlog`)."""
        n, self._skipped_new = self._skipped_new, 0
        return n

    async def backlog(self) -> int:
        """How many entries were added after the last one read (including any trimmed meanwhile); also
        notes how many lines the monitor left out meanwhile (`take_skipped`)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xinfo_stream(self.key)
        pipe.get(self.skipped_key)
        info, skipped = await pipe.execute(raise_on_error=False)
        if not isinstance(skipped, Exception):
            total = int(skipped or 0)
            if total < self.skipped_seen:  # the counter was deleted and made anew
                self.skipped_seen = 0
            self._skipped_new += total - self.skipped_seen
            self.skipped_seen = total
        if isinstance(info, Exception):
            return 0
        added, _ = _added(info)
        if added < self.added_seen:  # the stream was deleted and made anew: start over
            self.added_seen, self.last_id = 0, "0-0"
        return added - self.added_seen

    async def read(self, count: int, block_ms: int | None = None) -> list[dict[str, str]]:
        """Up to `count` entries after the last read, waiting up to `block_ms` if there are none."""
        reply = await self.client.xread({self.key: self.last_id}, count=count, block=block_ms)
        rows = reply[0][1] if reply else []
        if rows:
            self.last_id = rows[-1][0]
            self.added_seen += len(rows)
        return [entry(i, f) for i, f in rows]

    async def skip_to_latest(self, n: int) -> tuple[list[dict[str, str]], int]:
        """Jump to the newest `n` entries: (those entries, how many unread entries were skipped)."""
        lines, added, last = await self._snapshot_latest(n)
        unread = added - self.added_seen
        lines = lines[-unread:] if 0 < unread < len(lines) else (lines if unread > 0 else [])
        dropped = max(unread - len(lines), 0)
        self.added_seen, self.last_id = added, last
        return lines, dropped
