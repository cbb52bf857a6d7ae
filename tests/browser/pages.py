"""Helpers of the browser tests (fixtures live in conftest.py): users the server process can sign in, signing in
on a page, calling services off Playwright's event loop, an API client with a token, waiting for a container to
run, reading a container's json-file log records on the host."""

from __future__ import annotations

import json
from pathlib import Path

from containers.models import Container


def make_user(name: str):
    """A signed-up non-superuser whose password the server process can check (it has no MD5 hasher)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    user = get_user_model().objects.create_user(name)
    user.password = hasher.encode(f"pw-{name}-123", hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    return user


def login(page, live_berth, user) -> None:
    page.goto(live_berth.url + "/login/")
    page.fill("#id_username", user.get_username())
    mine = user.pk == live_berth.user.pk
    page.fill("#id_password", live_berth.password if mine else f"pw-{user.get_username()}-123")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/login/" not in page.url, page.locator("main").inner_text()


def off_loop(fn, *args, **kwargs):
    """Call a service from another thread: Playwright's sync API runs an event loop in this one, where the
    services' event publishing (async_to_sync) cannot run."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def client_of(user):
    """A DRF client signed in with a fresh API token of `user`."""
    from rest_framework.test import APIClient

    from containers.api.auth import create_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user, 'promises')[1]}")
    return client


def running(wait_for, row: Container, timeout: float = 60) -> Container:
    def reached():
        row.refresh_from_db()
        return row.state == "running"

    wait_for(reached, timeout=timeout, what=f"{row.name} to run")
    return row


def disk_records(state_root: Path, engine_id: str) -> list[dict]:
    from workers.engine.containers import ContainerManager

    out: list[dict] = []
    for f in ContainerManager(state_root).log_files(engine_id):
        out += [json.loads(line) for line in f.read_text().splitlines()]
    return out
