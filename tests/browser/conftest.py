"""Browser tests: a live Berth (the ASGI server of `make run` serving webapp.asgi with the real Redis channel layer, a real
Celery worker for one host with its own state root, the real runtime) and Debian's chromium driven by
Playwright. Never downloads a browser.

``live_berth`` (function) -> LiveBerth: .url, .worker (berth_worker handle, busybox:latest seeded),
    .user/.password (a signed-up non-superuser), .login(page). Everything it made is removed at the
    end: the web server and worker by PID, every container of the state root through the engine.
``browser`` (function) -> a launched chromium; ``watch(page)`` collects console errors and page
    errors into ``problems`` (a list the test asserts empty).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class LiveBerth:
    url: str
    worker: Any
    user: Any
    password: str

    def login(self, page) -> None:
        page.goto(self.url + "/login/")
        page.fill("#id_username", self.user.get_username())
        page.fill("#id_password", self.password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "/login/" not in page.url, page.locator("main").inner_text()


@pytest.fixture
def live_berth(berth_worker, live_redis, wait_job, tmp_path) -> Iterator[LiveBerth]:
    from django.contrib.auth import get_user_model

    from containers import jobs
    from tests.conftest import stop_process
    from tests.support import clean_state_root, start_asgi_server

    # The host's admin lets non-superusers bind-mount under <tmp_path>/bind (reported in the host's facts).
    (tmp_path / "bind").mkdir()
    worker = berth_worker("browser-node", env={"BERTH_BIND_MOUNT_ROOTS": str(tmp_path / "bind")})
    proc = None
    try:
        seeded = wait_job(jobs.submit("image.seed", worker.host, params={}), timeout=120)
        assert seeded.state == "succeeded", seeded.error
        proc, port = start_asgi_server(live_redis, tmp_path / "web-root", tmp_path / "web.out")
        password = "pw-dash-browser-123"
        # The tests' settings hash with MD5 for speed; the server process knows only the real hashers.
        from django.contrib.auth.hashers import PBKDF2PasswordHasher

        hasher = PBKDF2PasswordHasher()
        user = get_user_model().objects.create_user("dash")
        user.password = hasher.encode(password, hasher.salt(), iterations=1000)
        user.save(update_fields=["password"])
        yield LiveBerth(f"http://127.0.0.1:{port}", worker, user, password)
    finally:
        if proc is not None:
            stop_process(proc)
        worker.discard()
        clean_state_root(Path(worker.state_root))


@pytest.fixture
def browser(monkeypatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.tools import chromium

    executable = chromium()  # skips, saying so, where it is missing
    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def problems() -> list[str]:
    return []


@pytest.fixture
def watch(problems):
    def noted(page, m) -> None:
        # Chromium aborts its requests in flight when an address appears on any interface of the machine
        # (a container network's bridge or veth, made by this test's worker or another): not the page's fault.
        if m.type == "error" and "net::ERR_NETWORK_CHANGED" not in m.text:
            problems.append(f"{page.url}: {m.text}")

    def attach(page):
        page.on("console", lambda m: noted(page, m))
        page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
        return page

    return attach
