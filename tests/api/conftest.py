"""Fixtures for the API and permission tests: two teams with one user per role, their objects, clients.

``world`` builds (without any worker; jobs submitted to its host stay queued):
  host "api-node" (online, 4 CPUs); teams A and B;
  users: owner (owns A's objects, member of no team), viewer/operator/admin of team A,
  outsider (admin of team B), root (superuser);
  images: base busybox:latest (shared, no owner/team), A's "app-a:1" (team A, owner), B's "app-b:1";
  containers: "web-a" (team A, owner, running), "web-b" (team B, outsider, running).
``api_client(user)`` gives a DRF APIClient authenticated with a real token of that user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

ROLES = ("viewer", "operator", "admin", "outsider", "root", "owner")


@dataclass
class World:
    host: Any
    team_a: Any
    team_b: Any
    users: dict[str, Any]
    base: Any
    image_a: Any
    image_b: Any
    web_a: Any
    web_b: Any


@pytest.fixture
def world(db) -> World:
    from containers.models import Container, Host, Image, Team, TeamMembership

    User = get_user_model()
    host = Host.objects.create(name="api-node", cpus=4, memory_bytes=8 << 30, kernel="6.1.0-test",
                               cgroup_version="v2", runtimes=["berth"], last_heartbeat=timezone.now(),
                               facts={"state_root": "/nonexistent/berth-api-node"})
    team_a, team_b = Team.objects.create(name="team-a"), Team.objects.create(name="team-b")
    users = {name: User.objects.create_user(name, password=f"pw-{name}-123") for name in
             ("owner", "viewer", "operator", "admin", "outsider")}
    users["root"] = User.objects.create_superuser("root", password="pw-root-123")
    for name in ("viewer", "operator", "admin"):
        TeamMembership.objects.create(team=team_a, user=users[name], role=name)
    TeamMembership.objects.create(team=team_b, user=users["outsider"], role="admin")
    base = Image.objects.create(name="busybox", tag="latest", host=host, shared=True, digest="sha256:" + "0" * 64)
    image_a = Image.objects.create(name="app-a", tag="1", host=host, owner=users["owner"], team=team_a,
                                   digest="sha256:" + "a" * 64)
    image_b = Image.objects.create(name="app-b", tag="1", host=host, owner=users["outsider"], team=team_b,
                                   digest="sha256:" + "b" * 64)
    web_a = Container.objects.create(name="web-a", host=host, image=image_a, image_ref="app-a:1",
                                     owner=users["owner"], team=team_a, state="running", labels={"tier": "web"})
    web_b = Container.objects.create(name="web-b", host=host, image=image_b, image_ref="app-b:1",
                                     owner=users["outsider"], team=team_b, state="running", labels={"tier": "web"})
    return World(host, team_a, team_b, users, base, image_a, image_b, web_a, web_b)


@pytest.fixture
def api_client(world, settings):
    """api_client(name or user, token=True) -> APIClient signed in by a fresh token (or session)."""
    from rest_framework.test import APIClient

    from containers.api.auth import create_token

    settings.BERTH_API_LOGS_WAIT = 0  # no worker here: a logs job would never finish

    def make(who, token: bool = True) -> APIClient:
        user = world.users[who] if isinstance(who, str) else who
        client = APIClient()
        if token:
            _, text = create_token(user, "test")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {text}")
        else:
            client.force_login(user)
        return client

    return make


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@dataclass
class ApiServer:
    url: str
    token: str
    pid: int
    state_root: Any
    log_path: Any

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def api_server(transactional_db, live_redis, tmp_path_factory, world):
    """A real ASGI server (the one `make run` uses) on a free loopback port sharing this test's FILE database and the
    Redis of `live_redis`; `.token` is a superuser API token. Stopped by PID at the end."""
    import time

    import requests

    from containers.api.auth import hash_token
    from containers.models import ApiToken
    from tests.conftest import stop_process
    from tests.support import start_asgi_server

    state_root = tmp_path_factory.mktemp("api-server-state")
    log_path = tmp_path_factory.mktemp("api-server-log") / "web.log"
    token = "berth_api-server-test-token-0123456789abcdef"
    # A high id, so that fuzzed DELETE /tokens/{id} calls do not revoke the token the run uses.
    ApiToken.objects.create(pk=7_654_321, user=world.users["root"], name="api_server", prefix=token[:12],
                            key_hash=hash_token(token))
    proc, port = start_asgi_server(live_redis, state_root, log_path, BERTH_API_LOGS_WAIT="30",
                                   BERTH_API_THROTTLE_ANON="100000/min", BERTH_API_THROTTLE_WRITE="100000/min",
                                   BERTH_API_THROTTLE_READ="100000/min", BERTH_HOST_NAME="api-server-web")
    server = ApiServer(f"http://127.0.0.1:{port}", token, proc.pid, state_root, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the ASGI server exited: {server.log()[-3000:]}")
            try:
                if requests.get(server.url + "/api/schema/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the ASGI server did not answer: {server.log()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop_process(proc)
