"""A relay's parts on the ASGI server (containers/transfer_asgi.py): the secret checked in the database stands for
the parts that follow within TRUST seconds, for that secret only; the file's own rules still hold for every part;
past TRUST, or after the end, the database is asked again."""

from __future__ import annotations

import asyncio
import time

import pytest

from containers import transfer, transfer_asgi
from containers.models import Job
from containers.transfer_model import Transfer

pytestmark = pytest.mark.django_db(transaction=True)  # the router looks rows up on Django's thread


class Router:
    """RelayRouter driven in this process; what it did not take reaches `passed`; its database looks are counted."""

    def __init__(self, monkeypatch) -> None:
        self.looks = 0
        self.passed: list[str] = []
        real = transfer_asgi._live_relay

        def counted(authorization: str, pk: str):
            self.looks += 1
            return real(authorization, pk)

        monkeypatch.setattr(transfer_asgi, "_live_relay", counted)
        monkeypatch.setattr(transfer_asgi, "_trusted", {})

        async def app(scope, receive, send) -> None:
            self.passed.append(scope["method"])

        self.router = transfer_asgi.RelayRouter(app)

    def put(self, row: Transfer, data: bytes, offset: int, end: bool = False, secret: str | None = None) -> int | None:
        """One part; its answer's status (None: passed on to Django)."""
        scope = {"type": "http", "method": "PUT", "path": f"/internal/transfers/{row.pk}/",
                 "query_string": f"offset={offset}&end={int(end)}".encode(),
                 "headers": [(b"authorization", f"Bearer {secret or row.token}".encode()),
                             (b"content-length", str(len(data)).encode())]}
        messages = [{"type": "http.request", "body": data, "more_body": False}]
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        asyncio.run(self.router(scope, receive, send))
        return sent[0]["status"] if sent else None


def test_parts_within_trust_are_not_looked_up_again_and_a_wrong_secret_never_rides_on_it(relay, monkeypatch):
    # mutants: transfer_asgi._trusted_row: `return row if until > ...` -> `return None` (a look per part: 3, not 1);
    # RelayRouter: `key = (match.group(1), _header(...))` -> `key = (match.group(1), "")` (the wrong secret's part
    # is taken on the right one's trust)
    r = Router(monkeypatch)
    assert [r.put(relay, b"one-", 0), r.put(relay, b"two-", 4), r.put(relay, b"three", 8)] == [201, 201, 201]
    assert r.looks == 1
    assert r.put(relay, b"evil", 13, secret="not-the-secret") is None  # looked up, not found: Django's 404
    assert r.looks == 2 and r.passed == ["PUT"]
    assert transfer.staged_upload(relay).read_bytes() == b"one-two-three"


def test_a_consumed_relay_refuses_its_next_part_at_once_though_trusted(relay, monkeypatch):
    r = Router(monkeypatch)
    assert r.put(relay, b"one-", 0) == 201
    transfer.staged_upload(relay).unlink()  # what the receiver's DELETE does (with the row)
    assert r.put(relay, b"two-", 4) == 409 and r.looks == 1
    assert r.put(relay, b"two-", 4) == 409 and r.looks == 2  # a refusal ends the trust


def test_past_trust_the_job_s_state_is_read_again(relay, monkeypatch):
    # mutant: transfer_asgi._trusted_row: `until > time.monotonic()` -> `True` (the failed job's part is taken)
    monkeypatch.setattr(transfer_asgi, "TRUST", 0.2)
    r = Router(monkeypatch)
    assert r.put(relay, b"one-", 0) == 201
    Job.objects.filter(pk=relay.job_id).update(state=Job.State.FAILED)
    time.sleep(0.3)
    assert r.put(relay, b"two-", 4) == 409 and r.looks == 2


def test_the_last_part_ends_the_trust(relay, monkeypatch):
    # mutant: _receive_part: the line `_trusted.pop(checked, None)` under `if end:` removed (a part after the end
    # would be taken on trust by the relay's old row: 409 from the file, not Django's 405 for an upload)
    r = Router(monkeypatch)
    assert r.put(relay, b"one-", 0) == 201 and r.put(relay, b"end", 4, end=True) == 201
    relay.refresh_from_db()
    assert (relay.kind, relay.size) == (Transfer.Kind.UPLOAD, 7)
    assert r.put(relay, b"more", 7) is None and r.passed == ["PUT"]  # an upload now: Django's view answers
    assert r.looks == 2
