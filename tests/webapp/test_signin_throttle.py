"""The dashboard sign-in is throttled by account and by address (django-axes, counters in the database):
the real login view, the real auth backends, the real middleware."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

LIMIT = 4


@pytest.fixture
def users(db, settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = datetime.timedelta(minutes=15)
    User = get_user_model()
    return {name: User.objects.create_user(name, password=f"right-{name}-pw") for name in ("alice", "bob", "carol")}


def sign_in(username: str, password: str, address: str = "192.0.2.10"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password, "next": "/"})
    return client, response


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_account_is_throttled_even_with_the_right_password(users):
    for i in range(LIMIT - 1):
        _, r = sign_in("alice", f"wrong-{i}", address=f"192.0.2.{i + 1}")  # another address each time
        assert r.status_code == 200 and b"did not match" in r.content
    _, r = sign_in("alice", "wrong-last", address="192.0.2.99")
    assert r.status_code == 429
    client, r = sign_in("alice", "right-alice-pw", address="198.51.100.7")
    assert r.status_code == 429, "the right password during the lockout must be refused too"
    assert not signed_in(client)
    text = r.content.decode()
    assert "Too many failed sign-ins for this account or from this address. Try again in 15 minutes." in text
    assert r["Retry-After"] == "900"
    # Another account from the same addresses is not affected (only alice's counter is full).
    client, r = sign_in("bob", "right-bob-pw", address="192.0.2.99")
    assert r.status_code == 302 and signed_in(client)


def test_address_is_throttled_across_accounts(users):
    for i in range(LIMIT):
        sign_in(f"guess-{i}", "nope", address="203.0.113.5")
    client, r = sign_in("carol", "right-carol-pw", address="203.0.113.5")
    assert r.status_code == 429 and not signed_in(client)
    client, r = sign_in("carol", "right-carol-pw", address="203.0.113.6")
    assert r.status_code == 302 and signed_in(client)


def test_throttled_sign_ins_are_audited(users):
    from containers.models import AuditEvent

    for i in range(LIMIT):
        sign_in("alice", f"wrong-{i}")
    sign_in("alice", "right-alice-pw")
    failed = AuditEvent.objects.filter(action="auth.login", result="denied", target_repr="alice")
    assert failed.count() == LIMIT + 1
    throttled = list(AuditEvent.objects.filter(action="auth.throttled"))
    assert [(e.result, e.status_code, e.detail["username"], e.address) for e in throttled] == \
        [("denied", 429, "alice", "192.0.2.10")] * 2  # when the limit was reached, and the refused attempt


def test_counters_reset_after_the_window(users):
    from axes.models import AccessAttempt

    for i in range(LIMIT):
        sign_in("alice", f"wrong-{i}")
    client, r = sign_in("alice", "right-alice-pw")
    assert r.status_code == 429
    # Let the window pass: every counted failure is now older than the cool-off time.
    window = datetime.timedelta(minutes=15, seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - window)
    client, r = sign_in("alice", "right-alice-pw")
    assert r.status_code == 302 and signed_in(client)
    # The old failures no longer count: one more wrong password is an ordinary failure.
    _, r = sign_in("alice", "wrong-again")
    assert r.status_code == 200 and b"did not match" in r.content


def test_counters_are_shared_by_web_processes(users, transactional_db, redis_url, tmp_path):
    """Failures seen by this process lock the account in a separate server process (the one `make run`
    uses): the counters live in the shared database, not in a process's memory."""
    import requests

    from tests.conftest import stop_process
    from tests.support import start_asgi_server

    for i in range(LIMIT):
        sign_in("alice", f"wrong-{i}")
    proc, port = start_asgi_server(redis_url, tmp_path / "state", tmp_path / "web.log",
                                   BERTH_LOGIN_FAILURE_LIMIT=str(LIMIT))
    try:
        session = requests.Session()
        base = f"http://127.0.0.1:{port}"
        page = session.get(base + "/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        r = session.post(base + "/login/", data={"username": "alice", "password": "right-alice-pw",
                                                 "csrfmiddlewaretoken": token},
                         headers={"Referer": base + "/login/"}, allow_redirects=False, timeout=30)
        assert r.status_code == 429, (r.status_code, r.text[:500])
        assert "Too many failed sign-ins" in r.text
        assert "sessionid" not in session.cookies
    finally:
        stop_process(proc)
