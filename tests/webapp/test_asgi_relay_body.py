"""The ASGI handler keeps a relay part's body in memory up to the relay's part size (webapp/asgi_handler.py):
Django's own limit (FILE_UPLOAD_MAX_MEMORY_SIZE) would put an 8 MiB part on the web server's disk first."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from containers.transfer_relay import PART
from webapp.asgi_handler import BerthASGIHandler, _in_memory, body_in_memory


def body_of(handler: BerthASGIHandler, limit: int | None, size: int, piece: int = 1 << 20):
    """The body file read_body makes of `size` bytes sent in `piece`-sized ASGI messages."""
    sent = {"left": size}

    async def receive():
        n = min(piece, sent["left"])
        sent["left"] -= n
        return {"type": "http.request", "body": b"x" * n, "more_body": sent["left"] > 0}

    async def read():
        token = _in_memory.set(limit)
        try:
            return await handler.read_body(receive)
        finally:
            _in_memory.reset(token)

    return asyncio.run(read())


def test_only_a_relay_put_gets_the_larger_memory_limit():
    path = f"/internal/transfers/{uuid.uuid4()}/"
    assert body_in_memory({"method": "PUT", "path": path}) >= PART
    assert body_in_memory({"method": "GET", "path": path}) is None
    assert body_in_memory({"method": "PUT", "path": "/api/v1/images/import"}) is None
    assert body_in_memory({"method": "PUT", "path": path + "x/"}) is None


def test_a_relay_part_stays_in_memory_and_other_bodies_spill_as_before(settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    handler = BerthASGIHandler()
    part = body_of(handler, body_in_memory({"method": "PUT", "path": f"/internal/transfers/{uuid.uuid4()}/"}), PART)
    other = body_of(handler, None, PART)
    try:
        assert not part._rolled and part.read() == b"x" * PART  # in memory, whole, from its start
        assert other._rolled  # Django's own limit: on disk
        too_big = body_of(handler, 1 << 20, 3 << 20)
        assert too_big._rolled and len(too_big.read()) == 3 << 20  # beyond the limit it spills, bytes intact
    finally:
        part.close()
        other.close()


def test_a_client_gone_mid_body_aborts_the_request():
    from django.core.exceptions import RequestAborted

    async def receive():
        return {"type": "http.disconnect"}

    async def read():
        token = _in_memory.set(PART)
        try:
            return await BerthASGIHandler().read_body(receive)
        finally:
            _in_memory.reset(token)

    with pytest.raises(RequestAborted):
        asyncio.run(read())
