"""Live log lines into a capped Redis stream per container (`berth:logs:<id>`), so any web
server can replay the tail and follow. Disk stays the truth: if Redis is away, lines are
dropped from the stream (never from the file) and the sink retries a few seconds later.

The live view is fed from behind the disk and never holds a container back: each container may
send LIVE_RATE lines/s (with a burst of LIVE_BURST); past that a read's lines are sampled (its
newest lines are sent) and the count of lines left out of the live view is added to a counter beside the
stream (`berth:logs:<id>:skipped`, INCRBY), which a live view reads to say exactly how many it does not show
(the web side samples too: a note line in the stream could itself be sampled away and the count lost)."""

from __future__ import annotations

import os
import sys
import time

STREAM_MAXLEN = 10000
RETRY_AFTER = 5.0
# One EVAL appends a batch of entries to one stream: a pipeline of single XADDs costs ~100 µs of
# Python per line here, which held a flooding container to ~7,000 lines/s (the pipe pushes back).
XADD_MANY = """
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'stream', ARGV[i], 'time', ARGV[i + 1], 'log', ARGV[i + 2])
end
return (#ARGV - 1) / 3
"""
BATCH = 2000  # entries per EVAL: Redis runs a script atomically, so keep each one short (~15 ms)
LIVE_RATE = 10000.0  # lines/s per container into the live view (a browser shows 2,000/s at most)
LIVE_BURST = 5000.0
SAMPLE_TAIL = 50  # lines sent of a read that is over budget (its newest)
MAX_PENDING = 100_000  # lines held while Redis is slow to answer (the oldest go first)


def stream_key(cid: str) -> str:
    return f"berth:logs:{cid}"


def skipped_key(cid: str) -> str:
    """Lines of the container left out of its live stream (by the monitor), a counter beside the stream."""
    return f"{stream_key(cid)}:skipped"


class RedisStreamSink:
    """Buffers entries during one turn of the monitor's loop, then sends them as one write.

    The replies are read at the next flush, not at once: Redis appends one batch while the monitor
    reads and writes the next (on a busy host that is the difference between the two working in
    turn and in parallel). At most one batch is in flight."""

    def __init__(self, url: str, maxlen: int = STREAM_MAXLEN):
        self.url = url
        self.maxlen = maxlen
        self._client = None
        self._conn = None
        self._inflight = 0
        self._down_until = 0.0
        self._pending: list[tuple[str, str, str, str | bytes]] = []
        self._budget: dict[str, tuple[float, float]] = {}  # container -> (tokens, at monotonic time)
        self._skips: dict[str, int] = {}  # skipped-counter key -> lines left out, not yet added in Redis

    @classmethod
    def from_env(cls) -> RedisStreamSink | None:
        url = os.environ.get("BERTH_LOG_REDIS_URL")
        return cls(url) if url else None

    def add(self, cid: str, stream: str, when: str, text: str) -> None:
        if time.monotonic() < self._down_until:
            return
        self._pending.append((stream_key(cid), stream, when, text))

    def add_chunk(self, cid: str, stream: str, when: str, whole: bytes) -> None:
        """A read's complete lines (bytes ending in a newline), within the container's live budget."""
        now = time.monotonic()
        if now < self._down_until:
            return
        tokens, at = self._budget.get(cid, (LIVE_BURST, now))
        tokens = min(LIVE_BURST, tokens + (now - at) * LIVE_RATE)
        n = whole.count(b"\n")
        keep = n if n <= tokens else min(SAMPLE_TAIL, int(tokens))
        self._budget[cid] = (tokens - keep, now)
        key = stream_key(cid)
        if n - keep:
            self._skip(skipped_key(cid), n - keep)
        if keep == n:
            lines = whole[:-1].split(b"\n")
        else:
            lines = whole[:-1].rsplit(b"\n", keep)[1:] if keep else []
        self._pending.extend((key, stream, when, line + b"\n") for line in lines)

    def _skip(self, counter: str, n: int) -> None:
        self._skips[counter] = self._skips.get(counter, 0) + n

    def forget(self, cid: str) -> None:
        self._budget.pop(cid, None)

    def busy(self) -> bool:
        """Lines wait to be sent, or replies to be read: the loop should come back soon."""
        return bool(self._pending or self._skips or self._inflight) and time.monotonic() >= self._down_until

    def flush(self) -> None:
        if self._inflight:
            try:
                if not self._conn.can_read(0):
                    # Redis has not answered the last batch: the lines wait here (the live view falls
                    # behind), never the monitor's loop and so never a container's write.
                    if len(self._pending) > MAX_PENDING:
                        for key, *_ in self._pending[: len(self._pending) - MAX_PENDING]:
                            self._skip(f"{key}:skipped", 1)  # left out of the live view: counted
                        del self._pending[: len(self._pending) - MAX_PENDING]
                    return
            except Exception as exc:  # noqa: BLE001 - a broken sink must never stop the monitor
                self._broken(exc)
                return
            self._settle()
        if not self._pending and not self._skips:
            return
        batch, self._pending = self._pending, []
        skips, self._skips = self._skips, {}
        try:
            if self._conn is None:
                import redis  # imported only when a URL is configured: keeps the monitor small

                # Keep the client: when it is collected it disconnects its pool's connections.
                self._client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
                self._conn = self._client.connection_pool.get_connection()
            by_key: dict[str, list[str]] = {}
            for key, stream, when, text in batch:  # per stream, in order
                by_key.setdefault(key, []).extend((stream, when, text))
            commands = [("EVAL", XADD_MANY, 1, key, self.maxlen, *flat[i:i + 3 * BATCH])
                        for key, flat in by_key.items() for i in range(0, len(flat), 3 * BATCH)]
            commands += [("INCRBY", counter, n) for counter, n in skips.items()]
            self._conn.send_packed_command(self._conn.pack_commands(commands), check_health=False)
            self._inflight = len(commands)
        except Exception as exc:  # a broken sink must never stop the monitor
            self._broken(exc)

    def _settle(self) -> None:
        """Read the replies of the batch in flight (Redis has usually run it by now)."""
        try:
            for _ in range(self._inflight):
                self._conn.read_response()
        except Exception as exc:
            self._broken(exc)
        finally:
            self._inflight = 0

    def _broken(self, exc: Exception) -> None:
        print(f"berth-monitor: redis sink: {exc}; retrying in {RETRY_AFTER:.0f}s", file=sys.stderr)
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = self._client = None
        self._inflight = 0
        self._down_until = time.monotonic() + RETRY_AFTER
