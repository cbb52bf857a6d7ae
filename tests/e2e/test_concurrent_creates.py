"""100 concurrent creates and starts from two users through the API (issue 16, "Faults, each a test"):
real HTTP requests to the live server from 8 threads at once, a real Celery worker, the real engine and
netavark. Each user asks for 50 containers under 40 names (10 names asked twice, the two requests side by
side), half of them publishing port 80 on a host port the engine picks. In the end: each name given once per
user (the second ask a 409 at `name`), every container made is running on the host and in its row, and no
address, host port or engine name is given twice.

Every container and the monitor are removed at the end by the host_worker fixture, even when the test fails."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.cache import cache

from containers.api.auth import create_token
from containers.models import Container, Job
from tests.e2e.test_container_jobs import host_worker, seed  # noqa: F401 - fixtures and helpers
from workers.engine.containers import ContainerManager

pytestmark = [pytest.mark.e2e, pytest.mark.root]

PER_USER, NAMES = 50, 40


def asks(user: str) -> list[tuple[str, str, bool]]:
    """(user, name, publish) in the order sent: each twice-asked name's two requests are neighbours."""
    out = []
    for i in range(NAMES):
        out.append((user, f"c{i}", i % 2 == 1))
        if i < PER_USER - NAMES:
            out.append((user, f"c{i}", i % 2 == 0))
    return out


def test_100_concurrent_creates_and_starts_from_two_users(host_worker, wait_job, wait_for, live_server):  # noqa: F811
    users = get_user_model().objects
    people = {n: users.create_user(n) for n in ("ann", "ben")}
    tokens = {n: create_token(u, "concurrent")[1] for n, u in people.items()}
    w = host_worker("conc", concurrency=6)  # six creates at once on the host, not two
    seed(w, wait_job)
    cache.clear()  # API throttle counters
    plan = [a for pair in zip(asks("ann"), asks("ben"), strict=True) for a in pair]
    assert len(plan) == 2 * PER_USER

    def post(ask: tuple[str, str, bool]) -> tuple[tuple[str, str, bool], int, dict]:
        user, name, publish = ask
        body = {"image": "busybox:latest", "host": w.host_name, "name": name, "command": ["sleep", "600"],
                "memory": 16 * 1024 * 1024, "pids_limit": 8, "ports": ["80"] if publish else []}
        r = requests.post(f"{live_server.url}/api/v1/containers", json=body, timeout=120,
                          headers={"Authorization": f"Bearer {tokens[user]}"})
        return ask, r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, plan))

    made: dict[tuple[str, str], dict] = {}
    for (user, name, _publish), status, body in answers:
        if status == 202:
            assert (user, name) not in made, f"{user}'s name {name} was given twice"
            made[user, name] = body
        else:
            assert status == 409 and "name" in body["error"]["fields"], (user, name, status, body)
    assert len(made) == 2 * NAMES, sorted(made)

    for body in made.values():
        job = wait_job(Job.objects.get(pk=body["job"]["id"]), timeout=300)
        assert job.state == Job.State.SUCCEEDED, job.error
    rows = {(c.owner.username, c.name): c for c in Container.objects.select_related("owner")}
    assert set(rows) == set(made)
    wait_for(lambda: all(c.state == "running" for c in Container.objects.all()), timeout=60,
             what="every row to say running")

    engine = {v["id"]: v for v in ContainerManager(w.state_root).list(all=True)}
    assert sorted(engine) == sorted(c.engine_id for c in rows.values())
    assert all(v["state"] == "running" for v in engine.values())
    ips = [v["network"]["ip"] for v in engine.values()]
    assert all(ips) and _twice(ips) == []
    assert _twice(v["name"] for v in engine.values()) == []
    host_ports = [p["host_port"] for v in engine.values() for p in v["network"]["ports"]]
    published = {(u, n) for (u, n, publish), status, _ in answers if status == 202 and publish}
    assert len(host_ports) == len(published) and _twice(host_ports) == []
    for key, row in rows.items():  # the row says what the host says
        row.refresh_from_db()
        view = engine[row.engine_id]
        assert (row.state, row.network["ip"]) == ("running", view["network"]["ip"]), key
        assert bool(view["network"]["ports"]) == (key in published), key


def _twice(values) -> list:
    return sorted(v for v, n in Counter(values).items() if n > 1)
