"""Tokens, idempotency, throttling, validation errors, uploads, logs, the schema and docs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from django.test import Client
from rest_framework.test import APIClient

from containers.models import ApiToken, AuditEvent, Container, Job
from containers.transfer_files import is_locked
from containers.transfer_model import Transfer
from tests.transfers import upload_of

pytestmark = pytest.mark.django_db


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


# --- tokens ---------------------------------------------------------------------------------------------

def test_token_lifecycle(world):
    session = APIClient()
    session.force_login(world.users["operator"])
    made = session.post("/api/v1/tokens", {"name": "ci"}, format="json")
    assert made.status_code == 201
    token = made.json()["token"]
    row = ApiToken.objects.get(pk=made.json()["id"])
    # stored hashed: the token itself is nowhere in the database row
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert token.startswith(row.prefix) and row.last_used is None
    # shown once: never again in lists or details
    listed = session.get("/api/v1/tokens").json()["results"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    assert "token" not in session.get(f"/api/v1/tokens/{row.pk}").json()
    for scheme in ("Bearer", "Token"):
        client = APIClient(HTTP_AUTHORIZATION=f"{scheme} {token}")
        assert client.get("/api/v1/containers").status_code == 200
    row.refresh_from_db()
    assert row.last_used is not None
    assert session.delete(f"/api/v1/tokens/{row.pk}").json()["active"] is False
    revoked = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/containers")
    assert revoked.status_code == 401
    assert revoked.json()["error"] == {"code": "authentication_failed", "message": "this token was revoked"}
    assert revoked["WWW-Authenticate"].startswith("Bearer")
    bad = APIClient(HTTP_AUTHORIZATION="Bearer berth_not-a-token").get("/api/v1/containers")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "authentication_failed"
    assert APIClient().get("/api/v1/containers").json()["error"]["code"] == "not_authenticated"
    actions = list(AuditEvent.objects.values_list("action", "result"))
    assert ("token.create", "ok") in actions and ("token.revoke", "ok") in actions
    assert actions.count(("auth.token", "denied")) == 2


def test_tokens_page_shows_a_new_token_once_and_revokes(world):
    client = Client()
    client.force_login(world.users["viewer"])
    page = client.post("/tokens/", {"name": "laptop"})
    assert page.status_code == 200
    row = ApiToken.objects.get(user=world.users["viewer"])
    body = page.content.decode()
    start = body.index("data-token>") + len("data-token>")
    token = body[start:body.index("<", start)]
    assert hashlib.sha256(token.encode()).hexdigest() == row.key_hash
    again = client.get("/tokens/").content.decode()
    assert token not in again and row.prefix in again and "never" in again
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/hosts").status_code == 200
    assert row.prefix in client.get("/tokens/").content.decode()
    assert client.post(f"/tokens/{row.pk}/revoke/").status_code == 302
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/hosts").status_code == 401
    other = Client()
    other.force_login(world.users["operator"])
    assert other.post(f"/tokens/{row.pk}/revoke/").status_code == 404
    assert client.post("/tokens/", {"name": ""}).status_code == 400


def test_audit_page_filters_and_scopes(world, api_client):
    api_client("operator").post(f"/api/v1/containers/{world.web_a.pk}/stop", {}, format="json")
    api_client("viewer").post(f"/api/v1/containers/{world.web_a.pk}/stop", {}, format="json")
    api_client("outsider").post(f"/api/v1/containers/{world.web_b.pk}/stop", {}, format="json")
    admin = Client()
    admin.force_login(world.users["admin"])
    body = admin.get("/audit/").content.decode()
    assert body.count("<code>container.stop</code>") == 2 and "web-b" not in body
    denied = admin.get("/audit/?result=denied").content.decode()
    assert denied.count("<code>container.stop</code>") == 1 and "viewer" in denied
    assert admin.get("/audit/?since=yesterday").status_code == 400
    root = Client()
    root.force_login(world.users["root"])
    assert root.get("/audit/").content.decode().count("<code>container.stop</code>") == 3
    api = api_client("admin").get("/api/v1/audit?action=container.stop&result=ok").json()
    assert [e["actor_name"] for e in api["results"]] == ["operator"]
    assert api_client("admin").get("/api/v1/audit?since=nope").json()["error"]["fields"] == {
        "since": ["since must be an ISO 8601 time like 2026-01-31T12:00:00Z"]}


# --- idempotency, throttling, validation ----------------------------------------------------------------

def test_idempotency_key_returns_the_same_job(world, api_client):
    op, admin = api_client("operator"), api_client("admin")
    url = f"/api/v1/containers/{world.web_a.pk}/stop"
    first = op.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    second = op.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == second.status_code == 202 and first.json()["id"] == second.json()["id"]
    assert admin.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="abc").json()["id"] != first.json()["id"]
    reuse = op.post(f"/api/v1/containers/{world.web_a.pk}/pause", {}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert reuse.status_code == 409 and reuse.json()["error"]["code"] == "idempotency_key_reused"
    create = {"image": "busybox", "name": "once"}
    c1 = op.post("/api/v1/containers", create, format="json", HTTP_IDEMPOTENCY_KEY="mk")
    c2 = op.post("/api/v1/containers", create, format="json", HTTP_IDEMPOTENCY_KEY="mk")
    assert c1.status_code == c2.status_code == 202 and c1.json()["job"]["id"] == c2.json()["job"]["id"]
    assert Container.objects.filter(name="once").count() == 1
    assert Job.objects.filter(kind="container.stop").count() == 2


def test_throttling_answers_429_json(world, api_client, settings):
    settings.BERTH_API_THROTTLE_RATES = {"anon": "2/min", "write": "3/min", "read": "1000/min"}
    op = api_client("operator")
    codes = [op.post(f"/api/v1/containers/{world.web_a.pk}/stop", {}, format="json").status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    limited = op.post(f"/api/v1/containers/{world.web_a.pk}/stop", {}, format="json")
    assert limited.json()["error"]["code"] == "throttled" and int(limited["Retry-After"]) > 0
    assert op.get("/api/v1/containers").status_code == 200  # reads have their own budget
    anon = APIClient()
    assert [anon.get("/api/v1/hosts").status_code for _ in range(3)] == [401, 401, 429]
    guesser = APIClient(HTTP_AUTHORIZATION="Bearer berth_guess", REMOTE_ADDR="10.9.9.9")
    assert [guesser.get("/api/v1/hosts").status_code for _ in range(3)] == [401, 401, 429]
    assert Job.objects.count() == 3


@pytest.mark.parametrize("body,field,code,status", [
    ({"image": "busybox", "memory": 1}, "memory", "invalid", 400),
    ({"image": "busybox", "memory": "x"}, "memory", "invalid", 400),
    ({"image": "busybox", "cpus": "many"}, "cpus", "invalid", 400),
    ({"image": "busybox", "cpus": 1000}, "cpus", "invalid", 400),
    ({"image": "busybox", "name": "web-a", "team": "A"}, "name", "name_taken", 409),
    ({"image": "busybox", "name": "no spaces"}, "name", "invalid", 400),
    ({"image": "busybox", "env": {"A B": "1"}}, "env", "invalid", 400),
    ({"image": "busybox", "command": "not a list"}, "command", "invalid", 400),
    ({"image": "busybox", "restart_policy": "maybe"}, "restart_policy", "invalid", 400),
    ({"image": "busybox", "host": "nowhere"}, "host", "no_such_host", 404),
    ({"image": "ghost:1"}, "image", "no_such_image", 404),
    ({}, "image", "invalid", 400),
])
def test_validation_errors_name_the_field(world, api_client, body, field, code, status):
    if body.get("team") == "A":
        body = {**body, "team": world.team_a.pk}
    response = api_client("operator").post("/api/v1/containers", body, format="json")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and field in error["fields"] and error["message"]
    assert not Job.objects.exists() and Container.objects.count() == 2


def test_action_body_validation(world, api_client):
    op = api_client("operator")
    r = op.post(f"/api/v1/containers/{world.web_a.pk}/stop", {"timeout": -1}, format="json")
    assert r.status_code == 400 and "timeout" in r.json()["error"]["fields"]
    r = op.post(f"/api/v1/containers/{world.web_a.pk}/kill", {"signal": "SIGWHAT"}, format="json")
    assert r.status_code == 400 and "signal" in r.json()["error"]["fields"]
    r = op.post(f"/api/v1/containers/{world.web_a.pk}/start", {}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = op.post(f"/api/v1/containers/{world.web_a.pk}/stop", "{not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "parse_error"
    r = op.get("/api/v1/containers?state=sleeping")
    assert r.status_code == 400 and "state" in r.json()["error"]["fields"]
    r = op.get("/api/v1/containers?ordering=password")
    assert r.status_code == 400 and "ordering" in r.json()["error"]["fields"]
    assert not Job.objects.exists()


# --- uploads --------------------------------------------------------------------------------------------

@pytest.fixture
def uploads(settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = tmp_path
    return tmp_path / "uploads"


def test_import_raw_body_is_streamed_to_the_uploads_dir(world, api_client, uploads):
    op = api_client("operator")
    data = tarball()
    r = op.generic("POST", f"/api/v1/images/import?ref=mine:1&team={world.team_a.pk}", data,
                   content_type="application/x-tar")
    assert r.status_code == 202, r.content
    job = Job.objects.get(pk=r.json()["id"])
    assert job.kind == "image.import" and job.params["ref"] == "mine:1" and job.params["team_id"] == world.team_a.pk
    assert upload_of(job).read_bytes() == data and upload_of(job).parent == uploads
    assert not is_locked(upload_of(job)), "the request let go of the file: the Transfer row owns it now"
    assert Transfer.objects.get(job=job).size == len(data)


def test_import_multipart(world, api_client, uploads):
    op = api_client("operator")
    upload = io.BytesIO(tarball())
    upload.name = "rootfs.tar"
    r = op.post("/api/v1/images/import", {"file": upload, "ref": "multi:2"}, format="multipart")
    assert r.status_code == 202, r.content
    job = Job.objects.get(pk=r.json()["id"])
    assert upload_of(job).read_bytes() == tarball()
    assert [p.name for p in uploads.iterdir()] == [upload_of(job).name]


def test_import_refusals_leave_nothing(world, api_client, uploads):
    op = api_client("operator")
    r = op.generic("POST", "/api/v1/images/import?ref=x:1", b"<html>no tar</html>" * 40,
                   content_type="application/octet-stream")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_a_tarball"
    assert r.json()["error"]["fields"] == {"file": [r.json()["error"]["message"]]}
    r = op.generic("POST", "/api/v1/images/import", tarball(), content_type="application/x-tar")
    assert r.status_code == 400 and "ref" in r.json()["error"]["fields"]
    r = op.generic("POST", "/api/v1/images/import?ref=x:1", b"text", content_type="text/plain")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    upload = io.BytesIO(b"nope" * 300)
    upload.name = "x.tar"
    r = op.post("/api/v1/images/import", {"file": upload, "ref": "y:1"}, format="multipart")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_a_tarball"
    r = op.post("/api/v1/images/import", {"ref": "y:1"}, format="multipart")
    assert r.status_code == 400 and "file" in r.json()["error"]["fields"]
    r = api_client("viewer").generic("POST", f"/api/v1/images/import?ref=z:1&team={world.team_a.pk}", tarball(),
                                     content_type="application/x-tar")
    assert r.status_code == 403
    assert not Job.objects.exists()
    assert not uploads.exists() or list(uploads.iterdir()) == []


# --- logs -----------------------------------------------------------------------------------------------

def test_logs_from_the_redis_window(world, api_client, live_redis):
    import redis

    from containers import logstream

    client = redis.Redis.from_url(live_redis)
    key = logstream.stream_key(world.web_a.engine_id)
    client.delete(key)
    try:
        for i in range(5):
            client.xadd(key, {"stream": "stdout", "time": f"2026-01-01T00:00:0{i}.000000000Z", "log": f"line {i}\n"})
        op = api_client("operator")
        r = op.get(f"/api/v1/containers/{world.web_a.pk}/logs?tail=2")
        assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
        assert r.content == b"line 3\nline 4\n"
        r = op.get(f"/api/v1/containers/{world.web_a.pk}/logs?tail=1&timestamps=1", HTTP_ACCEPT="text/plain")
        assert r.content == b"2026-01-01T00:00:04.000000000Z line 4\n"
        assert not Job.objects.exists()
        # more than the window holds: a logs job (no worker here, so 202 with it)
        r = op.get(f"/api/v1/containers/{world.web_a.pk}/logs?tail=50")
        assert r.status_code == 202 and r.json()["kind"] == "container.logs" and r.json()["params"]["tail"] == 50
        # follow on a stopped container: the lines, then the end
        Container.objects.filter(pk=world.web_a.pk).update(state="exited")
        r = op.get(f"/api/v1/containers/{world.web_a.pk}/logs?follow=1&tail=3")
        assert r.status_code == 200 and b"".join(r) == b"line 2\nline 3\nline 4\n"
        r = op.get(f"/api/v1/containers/{world.web_a.pk}/logs?tail=abc")
        assert r.status_code == 400 and "tail" in r.json()["error"]["fields"]
        assert api_client("viewer").get(f"/api/v1/containers/{world.web_a.pk}/logs").status_code == 403
    finally:
        client.delete(key)
        client.close()


# --- schema and docs ------------------------------------------------------------------------------------

def test_schema_and_docs_are_served(world, api_client):
    client = Client()
    client.force_login(world.users["viewer"])
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    doc = schema.json()
    assert doc["openapi"].startswith("3.") and "/api/v1/containers/{id}/start" in doc["paths"]
    start = doc["paths"]["/api/v1/containers/{id}/start"]["post"]
    assert {"202", "403", "404", "409", "429"} <= set(start["responses"])
    assert not [p for p in doc["paths"] if p.endswith("/")]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert client.get("/api/redoc/").status_code == 200
