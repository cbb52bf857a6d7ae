"""GET /api/v1/containers/{id}/logs: the Redis window when it holds enough, else a container.logs job;
follow=true streams the Redis stream until the container stops or the client goes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from .. import audit, logstream, services
from ..models import Container, Job
from . import serializers as s
from .params import query_bool

TEXT = "text/plain; charset=utf-8"
FOLLOW_TAIL = 100  # lines replayed before following when no tail is given
STOPPED = ("exited", "dead")


# As the schema types them (tail: a whole number or "all"; since: a number): a present but empty,
# spaced or otherwise odd value is a 400, not read leniently as "not given".
_WHOLE = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _query(request: Request) -> dict[str, Any]:
    q = request.query_params
    tail = None
    if "tail" in q and q["tail"] != "all":
        if not _WHOLE.fullmatch(q["tail"]):
            raise services.ServiceError("invalid", f"tail must be a whole number or all, not {q['tail'][:30]!r}",
                                        field="tail")
        tail = services._int(q["tail"], "tail", low=0, high=1_000_000)
    since = None
    if "since" in q:
        since = float(q["since"]) if _NUMBER.fullmatch(q["since"]) else -1.0
        if not 0 <= since <= 1e11:
            raise services.ServiceError("invalid", "since must be a unix time in seconds", field="since")
    return {"tail": tail, "since": since, "timestamps": query_bool(q, "timestamps"),
            "follow": query_bool(q, "follow")}


def line(entry: dict[str, str], timestamps: bool) -> str:
    text = entry.get("log", "")
    return f"{entry.get('time', '')} {text}" if timestamps else text


def from_stream(engine_id: str, tail: int | None, since: float | None) -> list[dict[str, str]] | None:
    """Lines from the Redis window, or None when it may not hold all of those asked for."""
    try:
        if since is None:
            if tail is None:
                return None  # everything: only the host's log file has it all
            entries = logstream.tail(engine_id, tail)
            return entries if len(entries) >= tail else None
        first = logstream.sync_client().xrange(logstream.stream_key(engine_id), "-", "+", count=1)
        since_ms = int(since * 1000)
        if not first or int(first[0][0].split("-")[0]) > since_ms:
            return None  # the window starts after `since`
        entries = logstream.since(engine_id, f"{since_ms}-0")
        return entries[-tail:] if tail else ([] if tail == 0 else entries)
    except (redis.RedisError, OSError, ValueError):
        return None


def _state(pk: int) -> str | None:
    return Container.objects.filter(pk=pk).values_list("state", flat=True).first()


async def follow_lines(pk: int, engine_id: str, tail: int, timestamps: bool) -> AsyncIterator[str]:
    """The last `tail` lines, then new ones as they come, until the container is stopped or gone."""
    initial = await sync_to_async(logstream.tail)(engine_id, tail)
    for entry in initial:
        yield line(entry, timestamps)
    last = initial[-1]["id"] if initial else ("$" if tail == 0 else "0")
    async for rows in logstream.follow(engine_id, last, block_ms=1000):
        if rows:
            last = rows[-1][0]
            yield "".join(line(logstream.entry(i, f), timestamps) for i, f in rows)
            continue
        if await sync_to_async(_state)(pk) in (*STOPPED, None):
            break
    if last != "$":  # lines that landed between the last read and the stop
        for entry in await sync_to_async(logstream.since)(engine_id, last):
            yield line(entry, timestamps)


def logs_response(request: Request, container: Container):
    user = request.user
    services._authorize(request, user, "container.logs", container)
    try:
        opts = _query(request)
    except services.ServiceError as exc:
        raise services._refuse(request, user, "container.logs", container, exc) from None
    if opts["follow"]:
        audit.record(request, user, "container.logs", container, "ok", {"follow": True}, status_code=200)
        tail = FOLLOW_TAIL if opts["tail"] is None else opts["tail"]
        response = StreamingHttpResponse(follow_lines(container.pk, container.engine_id, tail, opts["timestamps"]),
                                         content_type=TEXT)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    entries = from_stream(container.engine_id, opts["tail"], opts["since"])
    if entries is not None:
        audit.record(request, user, "container.logs", container, "ok", {"source": "stream"}, status_code=200)
        return HttpResponse("".join(line(e, opts["timestamps"]) for e in entries), content_type=TEXT)
    job = services.container_action(user, container, "logs", request=request,
                                    params={"tail": opts["tail"], "since": opts["since"],
                                            "timestamps": opts["timestamps"]})
    wait = settings.BERTH_API_LOGS_WAIT if container.host.online else 0
    deadline = time.monotonic() + wait
    while not job.finished_state and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    if job.state == Job.State.SUCCEEDED:
        path = services.download_path(job)
        response = services.StreamedFile(open(path, "rb"), content_type=TEXT)
        response["Content-Length"] = str(path.stat().st_size)
        return response
    if job.state == Job.State.FAILED:
        raise services.ServiceError("job_failed", f"reading the logs failed: {job.error or job.message}",
                                    status=502)
    return Response(s.JobSerializer(job, context={"request": request}).data, status=202)
