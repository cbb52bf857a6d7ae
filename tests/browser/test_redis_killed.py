"""redis-server killed -9 (a private one this module starts, by its PID) while jobs are in flight and a browser
follows a container's log (issue 16): the jobs that ran meanwhile end in the database, the one whose message Redis
held (lost: no persistence) and the one submitted while Redis was down are sent again by the worker once Redis is
back (workers/agent.py BrokerWatch) and run, the worker takes new jobs, and the page's live view resumes by itself.
Mutants: tests/README.md."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from containers import jobs, services
from containers.models import Job
from tests.browser.pages import disk_records, login, off_loop, running
from tests.conftest import REDIS_SERVER, _point_celery_at, _wait, die_with_parent, free_port, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

TICKER = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"


class OwnRedis:
    """A redis-server on a fixed loopback port, without persistence (a restart finds it empty)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port, self.proc = workdir, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited: {(self.workdir / 'redis.log').read_text(errors='replace')[-800:]}")
            try:  # the PID, not PING: another process could hold the port
                return client.info("server").get("process_id") == proc.pid
            except redis.RedisError:
                return False

        _wait(up, 30, "the private redis-server to answer")
        client.close()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def own_redis(tmp_path_factory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("own-redis"))
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            stop_process(server.proc)


@pytest.fixture
def live_redis(own_redis, settings) -> Iterator[str]:
    """Overrides tests/conftest.py's: everything here (this process, the worker, the web server) uses the private
    redis-server this test kills, never the session's."""
    from webapp.celery import app

    before = app.conf.broker_url
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [{"address": own_redis.url, "socket_timeout": 30}]}}}
    settings.REDIS_URL = own_redis.url
    _point_celery_at(own_redis.url)
    try:
        yield own_redis.url
    finally:
        _point_celery_at(before)


def test_redis_killed_with_jobs_in_flight_and_a_log_followed_in_the_browser(
        live_berth, own_redis, browser, wait_job, wait_for, tmp_path):
    host, user = live_berth.worker.host, live_berth.user
    row, made = off_loop(services.create_container, user, host=host, image="busybox:latest", name="ticker",
                         command=["sh", "-c", TICKER], networks=["none"])
    assert wait_job(made).state == Job.State.SUCCEEDED, made.error
    running(wait_for, row)
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    login(page, live_berth, user)
    page.goto(f"{live_berth.url}/containers/{row.pk}/")
    newest = ("Math.max(-1, ...[...document.querySelectorAll('[data-role=view] .ln .tx')]"
              ".map(e => e.textContent.match(/^tick-(\\d+)$/)).filter(Boolean).map(m => +m[1]))")
    page.wait_for_function(f"{newest} >= 2", timeout=60_000)
    assert page.locator("[data-role=status]").inner_text() == "live"

    # In flight: two jobs running (the worker's two pool processes), one whose message waits in Redis behind them.
    gate = tmp_path / "gate"
    held = [off_loop(jobs.submit, "test.wait_file", host, params={"path": str(gate)}) for _ in range(2)]
    for job in held:
        wait_job(job, Job.State.RUNNING)
    queued = off_loop(jobs.submit, "test.steps", host, params={"steps": 1})

    own_redis.kill()
    at_kill = max(int(r["log"].split("-")[1]) for r in disk_records(live_berth.worker.state_root, row.engine_id))
    late = off_loop(jobs.submit, "test.steps", host, params={"steps": 1})  # refused by the dead broker: kept queued
    gate.touch()
    for job in held:  # they end without Redis: the database says so
        assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    page.wait_for_function("document.querySelector('[data-role=status]').textContent !== 'live'", timeout=60_000)
    for job in (queued, late):
        job.refresh_from_db()
        assert job.state == Job.State.QUEUED, (job.pk, job.state)  # their messages are gone, or never went

    own_redis.start()  # back on its port, empty
    for job in (queued, late):
        assert wait_job(job, timeout=120).state == Job.State.SUCCEEDED, job.error
    again = off_loop(jobs.submit, "test.steps", host, params={"steps": 1})
    assert wait_job(again, timeout=120).state == Job.State.SUCCEEDED, again.error  # the worker is back on the queue
    # The page reconnects by itself and shows lines written after the kill.
    page.wait_for_function(f"{newest} > {at_kill}", timeout=90_000)
    page.wait_for_function("document.querySelector('[data-role=status]').textContent === 'live'", timeout=30_000)
