"""The way in end to end: a real worker and engine, the REST API as non-superusers (DRF client with a token),
and the console consumer over the real Redis: exec with its exit code recorded even when the worker is
killed -9 mid-session, `echo $((6*7))` typed into a console answers 42, a viewer's console is refused, team B
cannot reach team A's console or session by guessing ids, files go in and out, top and stats answer."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from containers.models import AuditEvent, Job, Team, TeamMembership
from tests.e2e.test_container_jobs import create, host_worker, row_where, seed  # noqa: F401 - fixture
from webapp.asgi import application

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(300)]


def _users():
    User = get_user_model()
    team_a, team_b = Team.objects.create(name="way-a"), Team.objects.create(name="way-b")
    users = {n: User.objects.create_user(n, password=f"pw-{n}-123") for n in ("lead", "op", "viewer", "outsider")}
    TeamMembership.objects.create(team=team_a, user=users["lead"], role="admin")
    TeamMembership.objects.create(team=team_a, user=users["op"], role="operator")
    TeamMembership.objects.create(team=team_a, user=users["viewer"], role="viewer")
    TeamMembership.objects.create(team=team_b, user=users["outsider"], role="admin")
    return team_a, users


def _api(user) -> APIClient:
    from containers.api.auth import create_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user, 'way-in')[1]}")
    return client


def _ws_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"origin", b"http://127.0.0.1")]


@pytest.fixture
def box(host_worker, wait_job, wait_for):  # noqa: F811 - the fixture imported above
    w = host_worker("way-in")
    seed(w, wait_job)
    team_a, users = _users()
    # Made by the team's admin for the team: for everyone else the team role decides who may get in.
    row, job = create(w, "shellbox", users["lead"], team=team_a, command=["sleep", "1000"])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, row, "running", state="running")
    return w, row, users


def _exit_code(api: APIClient, pk: int, sid: str, wait_for) -> int:
    def ended():
        body = api.get(f"/api/v1/containers/{pk}/exec/{sid}").json()
        return body["exit_code"] if body["status"] == "exited" else None

    return wait_for(lambda: ended() is not None, 60, "the session's exit code") and ended()


def test_exec_api_exit_code_survives_a_killed_worker(box, wait_for):
    worker, row, users = box
    api = _api(users["op"])
    r = api.post(f"/api/v1/containers/{row.pk}/exec", {"command": ["sh", "-c", "exit 3"]}, format="json")
    assert r.status_code == 201, r.content
    assert _exit_code(api, row.pk, r.json()["session"], wait_for) == 3
    # plain HTTP for clients without a WebSocket: input in the request body, output streamed until the end
    r = api.post(f"/api/v1/containers/{row.pk}/exec", {"command": ["tr", "a-z", "A-Z"], "interactive": True},
                 format="json")
    sid = r.json()["session"]
    assert api.generic("POST", f"/api/v1/containers/{row.pk}/exec/{sid}/input?eof=1", b"shout\n",
                       content_type="application/octet-stream").status_code == 204
    assert b"".join(api.get(f"/api/v1/containers/{row.pk}/exec/{sid}/output")) == b"SHOUT\n"
    assert _exit_code(api, row.pk, sid, wait_for) == 0
    # a session that waits for its input: the worker that started it is killed -9, the session lives on
    r = api.post(f"/api/v1/containers/{row.pk}/exec", {"command": ["sh", "-c", "read x; exit $x"],
                                                        "interactive": True}, format="json")
    sid = r.json()["session"]
    worker.kill9()
    import redis
    from django.conf import settings

    from workers.engine.monitor.exec_relay import in_key

    redis.Redis.from_url(settings.REDIS_URL).xadd(in_key(sid), {"k": "input", "d": b"42\n"})
    assert _exit_code(api, row.pk, sid, wait_for) == 42
    end = AuditEvent.objects.filter(action="container.exec.end", detail__session=sid).get()
    assert end.detail["exit_code"] == 42 and end.actor == users["op"]
    assert end.detail["command"] == ["sh", "-c", "read x; exit $x"]
    # refusals name the field
    bad = api.post(f"/api/v1/containers/{row.pk}/exec", {"command": []}, format="json")
    assert bad.status_code == 400 and "command" in bad.json()["error"]["fields"]


def test_console_answers_42_and_refuses_viewers_and_other_teams(box, wait_for):
    _, row, users = box
    headers = {name: _ws_headers(u) for name, u in users.items()}  # sign-ins before the event loop runs

    async def console(user, query: str = "rows=30&cols=100"):
        comm = WebsocketCommunicator(application, f"/ws/containers/{row.pk}/console/?{query}",
                                     headers=headers[user.username])
        connected, _ = await comm.connect(timeout=30)
        assert connected
        return comm

    async def until(comm, needle: bytes, buf: bytearray) -> None:
        while needle not in buf:
            msg = await comm.receive_output(timeout=30)
            assert msg["type"] == "websocket.send", msg
            if msg.get("bytes") is not None:
                buf += msg["bytes"]
            else:
                assert json.loads(msg["text"])["type"] in ("session",), msg

    async def scenario():
        comm = await console(users["op"])
        first = json.loads(await comm.receive_from(timeout=60))
        assert first["type"] == "session"
        buf = bytearray()
        await comm.send_to(text_data=json.dumps({"type": "input", "data": "echo $((6*7))\n"}))
        await until(comm, b"42\r\n", buf)
        await comm.send_to(text_data=json.dumps({"type": "resize", "rows": 33, "cols": 111}))
        await comm.send_to(bytes_data=b"stty size\n")
        await until(comm, b"33 111", buf)
        await comm.disconnect()
        # a page reload: the same session, its output replayed
        again = await console(users["op"], f"session={first['session']}")
        assert json.loads(await again.receive_from(timeout=30))["session"] == first["session"]
        replay = bytearray()
        await until(again, b"33 111", replay)
        await again.send_to(text_data=json.dumps({"type": "input", "data": "exit 7\n"}))
        while True:
            msg = await again.receive_output(timeout=30)
            if msg["type"] == "websocket.send" and msg.get("text") and json.loads(msg["text"])["type"] == "exit":
                assert json.loads(msg["text"])["exit_code"] == 7
                break
        # a viewer may not open a console; team B sees nothing, not even by the session's id
        for user, code, query in ((users["viewer"], 4403, ""), (users["outsider"], 4404, ""),
                                  (users["outsider"], 4404, f"session={first['session']}")):
            comm = await console(user, query)
            assert json.loads(await comm.receive_from(timeout=30))["type"] == "error"
            assert (await comm.receive_output(timeout=30)) == {"type": "websocket.close", "code": code}
        return first["session"]

    sid = async_to_sync(scenario)()
    assert _exit_code(_api(users["op"]), row.pk, sid, wait_for) == 7
    for user, status in ((users["viewer"], 403), (users["outsider"], 404)):
        r = _api(user).post(f"/api/v1/containers/{row.pk}/exec", {"command": ["true"]}, format="json")
        assert r.status_code == status, r.content
    assert _api(users["outsider"]).get(f"/api/v1/containers/{row.pk}/exec/{sid}").status_code == 404


def test_files_top_and_stats_through_the_api(box, wait_for):
    _, row, users = box
    op, viewer = _api(users["op"]), _api(users["viewer"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 6
        tf.addfile(ti, io.BytesIO(b"hello\n"))
    r = op.put(f"/api/v1/containers/{row.pk}/archive?path=/tmp", buf.getvalue(), content_type="application/x-tar")
    assert r.status_code == 200, r.content
    assert viewer.put(f"/api/v1/containers/{row.pk}/archive?path=/tmp", buf.getvalue(),
                      content_type="application/x-tar").status_code == 403
    r = op.get(f"/api/v1/containers/{row.pk}/archive?path=/tmp/hello.txt")
    assert r.status_code == 200, r.content
    with tarfile.open(fileobj=io.BytesIO(b"".join(r.streaming_content))) as tf:
        assert tf.extractfile("hello.txt").read() == b"hello\n"
    listing = op.get(f"/api/v1/containers/{row.pk}/files?path=/tmp").json()
    assert "hello.txt" in [e["name"] for e in listing["entries"]]
    assert op.get(f"/api/v1/containers/{row.pk}/archive?path=relative").json()["error"]["fields"]["path"]
    top = viewer.get(f"/api/v1/containers/{row.pk}/top")
    assert top.status_code == 200 and any(p["cmd"] == "sleep 1000" for p in top.json()["processes"])

    def sampled():
        body = viewer.get(f"/api/v1/containers/{row.pk}/stats").json()
        return body if len(body["history"]) >= 2 else None

    wait_for(sampled, 60, "two stats samples")
    body = sampled()
    assert body["sample"]["pids"] >= 1 and body["sample"]["memory"] > 0
    assert _api(users["outsider"]).get(f"/api/v1/containers/{row.pk}/stats").status_code == 404
    # the host's overview: the container and its figures for the team, nothing of it for team B
    overview = viewer.get(f"/api/v1/hosts/{row.host_id}/stats").json()
    (mine,) = [c for c in overview["containers"] if c["id"] == row.pk]
    assert mine["sample"]["memory"] > 0
    assert row.pk not in [c["id"] for c in _api(users["outsider"]).get(f"/api/v1/hosts/{row.host_id}/stats")
                          .json()["containers"]]


def test_losing_the_role_closes_the_console_and_its_session(box, wait_for):
    _, row, users = box
    headers = _ws_headers(users["op"])
    demote = database_sync_to_async(lambda: TeamMembership.objects.filter(user=users["op"]).update(role="viewer"))

    async def scenario():
        comm = WebsocketCommunicator(application, f"/ws/containers/{row.pk}/console/", headers=headers)
        assert (await comm.connect(timeout=30))[0]
        first = json.loads(await comm.receive_from(timeout=60))
        assert first["type"] == "session"
        await demote()
        while True:  # output (the prompt) may come first; then the refusal and the close
            msg = await comm.receive_output(timeout=60)
            if msg["type"] == "websocket.close":
                assert msg["code"] == 4403
                return first["session"]
            if msg.get("text"):
                assert json.loads(msg["text"])["type"] == "error"

    sid = async_to_sync(scenario)()
    job = Job.objects.get(kind="container.exec", result__session=sid)

    def killed():
        job.refresh_from_db()
        return job.result.get("status") == "exited"

    wait_for(killed, 60, "the session of the demoted user to end")
    assert job.result["exit_code"] == 137
