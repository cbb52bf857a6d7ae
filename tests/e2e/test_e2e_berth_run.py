"""`manage.py berth_run` (what `make run` runs) brings Berth up; a real browser uses the dashboard."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def berth_run(tmp_path, berth_run_env, tmp_path_factory):
    env = {**os.environ, "BERTH_ADMIN_PASSWORD": "pw-admin-e2e-123", "BERTH_HOST_NAME": "e2e-run",
           "BERTH_HEARTBEAT_SECONDS": "1", "PYTHONUNBUFFERED": "1",
           "TMPDIR": str(tmp_path_factory.mktemp("tmp"))}  # what its worker's pool leaves (pymp-*) stays out of /tmp
    for var in ("REDIS_URL", "DATABASE_URL", "BERTH_STATE_ROOT", "BERTH_SECRET_KEY", "DJANGO_SECRET_KEY"):
        env.pop(var, None)
    env.update(berth_run_env)  # PostgreSQL in make test's end-to-end part
    out_path = tmp_path / "berth_run.out"
    proc = None
    try:
        # berth_run binds the port itself: one taken by another process after we chose it makes it exit
        # saying so, and another is tried (no collision under load).
        for _attempt in range(3):
            port = free_port()
            with open(out_path, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "manage.py", "berth_run", "--root", str(tmp_path / "root"), "--port",
                     str(port), "--redis-port", "0"],
                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 120
            while "Berth is up" not in out_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            else:
                break
            if proc.poll() is None or f"port {port} on 127.0.0.1 is taken" not in out_path.read_text():
                pytest.fail(f"berth_run did not come up:\n{out_path.read_text()}")
        else:
            pytest.fail("berth_run found no free port in 3 tries")
        yield proc, f"http://127.0.0.1:{port}", out_path
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_berth_run_serves_the_dashboard_with_live_jobs_and_stops_cleanly(berth_run):
    from playwright.sync_api import sync_playwright

    from tests.tools import chromium

    executable = chromium()
    proc, url, out_path = berth_run
    text = out_path.read_text()
    assert f"Berth is up: {url}/" in text and "login: admin" in text
    assert "pw-admin-e2e-123" not in text  # a password from the environment is never printed
    assert "watching heartbeats: a host is offline 15s after its last" in text  # the offline watch's thread
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for width in (1200, 375):
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(url + "/jobs/")
                assert "/login/" in page.url  # signed out: the login page, not data
                page.fill("#id_username", "admin")
                page.fill("#id_password", "pw-admin-e2e-123")
                page.click("button[type=submit]")
                page.wait_for_url("**/jobs/")
                page.goto(url + "/hosts/")
                card = page.locator(".host", has_text="e2e-run")
                assert card.locator('[data-field="online"]').inner_text() == "online"
                assert card.locator('[data-field="kernel"]').inner_text() == os.uname().release
                page.wait_for_selector("#live-status.on")
                card.locator("button", has_text="Probe now").click()
                page.wait_for_url("**/jobs/")
                first = page.locator("#jobs tr").first
                first.locator('[data-field="state"]:text("succeeded")').wait_for(timeout=60_000)
                assert first.locator("progress").get_attribute("value") == "100"
                # Nothing wider than the screen at phone width (the table scrolls inside its box).
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"page is {overflow}px wider than a {width}px screen"
                page.close()
        finally:
            browser.close()
    assert problems == []

    pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", text)]
    assert len(pids) == 3
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    for pid in pids:  # redis, worker and web were all stopped (and reaped) by berth_run
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still there"
