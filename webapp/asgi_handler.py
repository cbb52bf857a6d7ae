"""Django's ASGI handler, keeping a relay part's body in memory (containers/transfer_relay.py).

Django's handler reads a request's whole body before the view runs, into a file kept in memory up to
FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) and on disk beyond. Each request costs the web server several ms (Django's
stack, a database connection under ASGI): with parts below 2.5 MB, a move's 250 MB pack took 125 of them and
the requests, not the bytes, set the relay's pace (bench/move.py). A PUT to the internal transfer endpoint is
kept in memory up to transfer_relay.PART instead (a sender has one part in flight), so parts can be large
without a second copy of every byte on the web server's disk; beyond that size it spills to disk as any body."""

from __future__ import annotations

import contextvars
import re
import tempfile
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

_RELAY_PUT = re.compile(r"/internal/transfers/[0-9a-fA-F-]{32,36}/")
_in_memory: contextvars.ContextVar[int | None] = contextvars.ContextVar("in_memory", default=None)


def body_in_memory(scope: dict[str, Any]) -> int | None:
    """Bytes of this request's body to keep in memory, when it is not Django's setting."""
    from containers.transfer_relay import PART

    if scope.get("method") == "PUT" and _RELAY_PUT.fullmatch(scope.get("path", "")):
        return PART + 64 * 1024
    return None


class BerthASGIHandler(ASGIHandler):
    async def handle(self, scope, receive, send):
        token = _in_memory.set(body_in_memory(scope))
        try:
            return await super().handle(scope, receive, send)
        finally:
            _in_memory.reset(token)

    async def read_body(self, receive):
        limit = _in_memory.get()
        if limit is None:
            return await super().read_body(receive)
        body = tempfile.SpooledTemporaryFile(max_size=limit, mode="w+b")
        more = True
        while more:  # the ASGI messages of the body, until one says there is no more
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                raise RequestAborted()
            body.write(message.get("body", b""))
            more = message.get("more_body", False)
        body.seek(0)
        return body
