"""A relay's parts and its reader on the ASGI server's event loop (the rules are containers/transfer_relay.py's).

Through Django, each 1 MiB block a reader got was a hop to a thread and back, and each part sent was a whole
request through its middleware with its body spooled before the view ran: the web server spent 0.9 s of CPU on a
250 MB move pack, more than both hosts together, and the target waited on it (bench/move.py). Here a part's body
goes to the relay's file as its messages arrive and a reader's blocks leave as they are read, on the loop itself;
a reader at the end of the file is woken by a part written in this process, and looks again every NAP seconds
for one written by another (a second web server process, a DELETE). The database is asked for the secret of a
reader and of a relay's first part, again for a part that comes more than TRUST seconds after the last check,
at the end, and while a reader waits for a file that is not there yet: each look is a hop to Django's thread and
a connection, and a 250 MB pack's 35 parts cost the web server 0.26 s of its 0.7 s of CPU (bench/move.py). A
part taken on trust is still held to the file's rules: a relay consumed or dropped has no file to append to.

Only PUT and GET of a live relay whose secret matches are taken here; anything else (uploads, downloads, DELETE,
a wrong secret: the same 404) goes on to Django's view, which also serves a relay under WSGI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async

from . import transfer_relay
from .transfer_model import Transfer

PATH = re.compile(r"/internal/transfers/([0-9a-fA-F-]{32,36})/")
NAP = 0.02  # seconds a reader at the end of the file waits before it looks again, unless woken sooner
BLOCK = 1 << 20
TRUST = 1.0  # seconds a relay's checked secret (and its job's state) stands for its next parts

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_waiting: dict[str, set[asyncio.Future]] = {}
_trusted: dict[tuple[str, str], tuple[Transfer, float]] = {}  # (transfer id, Authorization) -> (row, until)


class RelayRouter:
    """ASGI middleware: a relay's PUT and GET served here, every other request passed to `app`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match and scope["method"] in ("GET", "PUT"):
            key = (match.group(1), _header(scope, b"authorization"))
            row = _trusted_row(key) if scope["method"] == "PUT" else None
            if row is None:
                row = await _db(_live_relay, key[1], key[0])
                if row is not None and scope["method"] == "PUT":
                    _trust(key, row)  # just checked in the database: its next parts go on trust
            if row is not None:
                if scope["method"] == "GET":
                    return await _send_growing(row, receive, send)
                return await _receive_part(row, key, scope, receive, send)
        await self.app(scope, receive, send)


def _trusted_row(key: tuple[str, str]) -> Transfer | None:
    """The relay whose secret `key` carried less than TRUST seconds ago, if any (the same id, the same header)."""
    row, until = _trusted.get(key, (None, 0.0))
    return row if until > time.monotonic() else None


def _trust(key: tuple[str, str], row: Transfer) -> None:
    now = time.monotonic()
    for stale in [k for k, (_, until) in _trusted.items() if until <= now]:
        del _trusted[stale]
    _trusted[key] = (row, now + TRUST)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _live_relay(authorization: str, pk: str) -> Transfer | None:
    from .transfer_views import authenticated

    try:
        pk = uuid.UUID(pk)
    except ValueError:
        return None
    row = authenticated(authorization, pk)
    return row if row is not None and row.kind == Transfer.Kind.RELAY else None


async def _db(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` on Django's thread for database work, its connection given back after (no request ends here to
    do it: PostgreSQL's pool, SQLite's file)."""
    from django.db import connection

    def run() -> Any:
        try:
            return fn(*args)
        finally:
            if not connection.in_atomic_block:
                connection.close()

    return await sync_to_async(run, thread_sensitive=True)()


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _refused(send: Send, exc: transfer_relay.RelayRefused) -> None:
    await _answer(send, exc.status, {"error": {"code": exc.code, "message": exc.message, "fields": None}})


async def _receive_part(row: Transfer, checked: tuple[str, str], scope: Scope, receive: Receive,
                        send: Send) -> None:
    """One part into the relay's file; `checked` is the (id, Authorization) its row was found by (see TRUST)."""
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    try:
        offset, length, end = transfer_relay.part_request(row, _header(scope, b"content-length"), query)
        part = transfer_relay.Part(row, offset, length, end)
    except transfer_relay.RelayRefused as exc:
        _trusted.pop(checked, None)
        return await _refused(send, exc)
    if end:
        _trusted.pop(checked, None)  # the relay becomes an upload: no part follows
    key = str(row.pk)
    try:
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender is gone: no answer; its part is short, the next one is refused (offset)
            part.write(message.get("body", b""))
            _wake(key)
            more = message.get("more_body", False)
        size = part.finish()
    except transfer_relay.RelayRefused as exc:
        return await _refused(send, exc)
    finally:
        part.close()
    if end:
        await _db(transfer_relay.mark_whole, row, size)
    _wake(key)
    await _answer(send, 201, {"size": size})


async def _send_growing(row: Transfer, receive: Receive, send: Send) -> None:
    reader = transfer_relay.GrowingFile(row)
    gone = asyncio.ensure_future(_disconnect(receive))  # a reader that went away stops the loop below
    key = str(row.pk)
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        while not gone.done():
            chunk = reader.poll(BLOCK)
            if chunk is None:
                if reader.row_due() and not await _db(transfer_relay.row_exists, reader.pk):
                    break
                await _nap(key)
                continue
            if not chunk:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not gone.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()
        reader.close()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _nap(key: str) -> None:
    future = asyncio.get_running_loop().create_future()
    _waiting.setdefault(key, set()).add(future)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, NAP)
    finally:
        waiters = _waiting.get(key)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del _waiting[key]


def _wake(key: str) -> None:
    for future in _waiting.pop(key, ()):
        if not future.done():
            future.set_result(None)
