"""`/ws/containers/<pk>/console/`: a browser terminal on an exec session in the container.

Query: `session=<id>` reconnects to a still-running session (after a page reload: its output is replayed from
the start the relay kept); otherwise a new one is started, running `command` (one command line) or a shell
picked in the container (/bin/bash, else /bin/sh), with `rows` and `cols`.

The host's relay (workers/exec_relay.py) links the session to Redis, so this consumer may run on any web
server: output comes from `berth:exec:<session>:out`, keystrokes and resizes go to `…:in`.

Client → server: binary frames or {"type": "input", "data": str}; {"type": "resize", "rows", "cols"}.
Server → client: binary frames (the terminal's bytes); {"type": "session", "session", "container"};
{"type": "exit", "exit_code"}; {"type": "error", "message"}.
Close codes: 4401 not signed in, 4404 no such container (or not visible), 4403 not allowed (operator role; also
when the role is lost while the console is open: the session is killed), 4409 container not running, 4400 bad
query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from urllib.parse import parse_qs

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .consumers import CLOSE_UNAUTHENTICATED, NO_CHANNEL_LAYER

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_CONFLICT = 4400, 4403, 4404, 4409
RECHECK = 5.0  # seconds between permission checks while the console is open
SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; fi; exec /bin/sh"]
MAX_INPUT = 16 * 1024


def _query(scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


@database_sync_to_async
def _authorize(user, pk: int, scope):
    """(container, close code, message)."""
    from .models import Container
    from .services import ServiceError
    from .services import exec as exec_services

    container = Container.objects.filter(pk=pk).select_related("host").first()
    if container is None:
        return None, CLOSE_NOT_FOUND, "no such container"
    try:
        exec_services.console_check(user, container, scope)
    except ServiceError as exc:
        return None, CLOSE_NOT_FOUND if exc.status == 404 else CLOSE_FORBIDDEN, exc.message
    return container, None, ""


@database_sync_to_async
def _open_session(user, container, query: dict[str, str], scope) -> tuple[str | None, int | None, str]:
    """(session id, close code, message): the named session of this container, or a new one."""
    from .services import ServiceError
    from .services import exec as exec_services

    try:
        if query.get("session"):
            job = exec_services.exec_job(user, container, query["session"])
            return job.result["session"], None, ""
        command = query.get("command") or SHELL
        job = exec_services.start_exec(user, container, command=command, tty=True,
                                       rows=query.get("rows") or 24, cols=query.get("cols") or 80, request=scope)
        done = exec_services.wait_finished(job, timeout=60)
        if done is None:
            return None, 1011, f"host {container.host.name} did not start the session in time (job #{job.pk})"
        return done.result["session"], None, ""
    except ServiceError as exc:
        code = {404: CLOSE_NOT_FOUND, 403: CLOSE_FORBIDDEN, 409: CLOSE_CONFLICT, 400: CLOSE_BAD_REQUEST}
        return None, code.get(exc.status, 1011), exc.message


class ContainerConsoleConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        self.task: asyncio.Task | None = None
        self.redis: aioredis.Redis | None = None
        self.session: str | None = None
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.pk = int(self.scope["url_route"]["kwargs"]["pk"])
        container, code, message = await _authorize(user, self.pk, self.scope)
        if code is None:
            self.session, code, message = await _open_session(user, container, _query(self.scope), self.scope)
        if code is not None:
            await self._fail(code, message)
            return
        from django.conf import settings

        self.redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
        await self.send(text_data=json.dumps({"type": "session", "session": self.session, "container": self.pk}))
        self.task = asyncio.create_task(self.pump())

    async def _fail(self, code: int, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "message": message}))
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.redis is None or self.session is None:
            return
        from workers.engine.monitor.exec_relay import in_key

        if bytes_data is not None:
            entry = {"k": "input", "d": bytes_data[:MAX_INPUT]}
        else:
            try:
                msg = json.loads(text_data or "")
            except ValueError:
                return
            if not isinstance(msg, dict):
                return
            if msg.get("type") == "input" and isinstance(msg.get("data"), str):
                entry = {"k": "input", "d": msg["data"][:MAX_INPUT].encode()}
            elif msg.get("type") == "resize":
                try:
                    rows, cols = int(msg["rows"]), int(msg["cols"])
                except (KeyError, TypeError, ValueError):
                    return
                if not (0 < rows <= 1000 and 0 < cols <= 1000):
                    return
                entry = {"k": "resize", "rows": rows, "cols": cols}
            else:
                return
        await self.redis.xadd(in_key(self.session), entry, maxlen=1000, approximate=True)

    async def pump(self) -> None:
        from workers.engine.monitor.exec_relay import in_key, out_key

        key = out_key(self.session)
        last = "0-0"
        next_check = time.monotonic() + RECHECK
        try:
            while True:
                got = await self.redis.xread({key: last}, count=200, block=1000)
                for _key, entries in got or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        kind = fields.get(b"t", b"")
                        if kind == b"exit":
                            info = json.loads(fields.get(b"d") or b"{}")
                            await self.send(text_data=json.dumps({"type": "exit", "exit_code": info.get("exit_code"),
                                                                  "error": info.get("error")}))
                            await self.close(code=1000)
                            return
                        await self.send(bytes_data=fields.get(b"d", b""))
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + RECHECK
                    _, code, message = await _authorize(self.scope["user"], self.pk, self.scope)
                    if code is not None:  # the role (or the container) is gone: so is the session
                        await self.redis.xadd(in_key(self.session), {"k": "kill"})
                        await self._fail(code, message or "you may no longer use this console")
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the terminal must learn that it stopped
            log.warning("console %s failed: %r", self.session, exc)
            await self._fail(1011, "the console connection to the host was lost; reload to reconnect")
