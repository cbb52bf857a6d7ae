"""Joining a machine (issue 18): `manage.py berth_agent` with a join token, run as a real process against this
test's Redis and database (SQLite file or PostgreSQL), as a second machine would against the control plane's.

Every process started here is stopped by PID (the agent, and its worker by the PIDs seen while it ran)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from containers import jobs, join, services
from containers.management.commands.berth_run import _start_ticks
from containers.models import Host, JoinToken
from tests.conftest import REPO, descendants, die_with_parent, kill_exact
from tests.postgres import database_url
from workers import agent

pytestmark = pytest.mark.e2e


def _agent_env(tmp_path: Path, live_server, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BERTH_HOST_NAME")}
    env.update({"DJANGO_SETTINGS_MODULE": "webapp.settings", "BERTH_STATE_ROOT": str(tmp_path / "state"),
                "BERTH_HEARTBEAT_SECONDS": "1", "BERTH_TEST_HANDLERS": "1", "BERTH_JOIN_TOKEN": token,
                "BERTH_SECRET_KEY": "berth-tests-only-worker-key", "BERTH_CONTROL_URL": live_server.url,
                "PYTHONPATH": str(REPO)})
    return env


def _agent(live_redis: str, tmp_path: Path, live_server, token: str, *extra: str) -> subprocess.Popen:
    """berth_agent given the URLs on its command line (so it re-executes itself with them in its environment)."""
    out = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 (the process outlives this function)
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "berth_agent", "--control-redis", live_redis,
         "--database", database_url(connection.settings_dict), *extra],
        cwd=REPO, env=_agent_env(tmp_path, live_server, token), stdout=out, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)


class Seen:
    """The PIDs (with start ticks) of an agent's descendants, collected while it runs, to kill them by id."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.known, self.done = proc, set(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(0.2) and self.proc.poll() is None:
            self.known.update(descendants(self.proc.pid))

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)
        if self.proc.poll() is None:
            self.known.update(descendants(self.proc.pid))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, ticks in self.known:
            kill_exact(pid, ticks)


@pytest.fixture
def admin(transactional_db):
    return get_user_model().objects.create_superuser("root", password="pw-root-123")


def test_agent_joins_serves_a_job_and_stops_when_its_token_is_revoked(admin, live_redis, live_server, tmp_path,
                                                                       wait_for, wait_job):
    row, token = join.make_token(admin, "rack-2")
    proc = _agent(live_redis, tmp_path, live_server, token, "--name", "joined-a", "--labels", "ssd,zone=a")
    seen = Seen(proc)
    log = tmp_path / "agent.log"
    try:
        def online():
            assert proc.poll() is None, log.read_text(errors="replace")
            host = Host.objects.filter(name="joined-a", last_heartbeat__isnull=False).first()
            return host if host is not None and host.online else None

        host = wait_for(online, timeout=90, what="the joined host's worker to heartbeat")
        assert (host.join_token_id, host.labels) == (row.pk, {"ssd": "", "zone": "a"})
        assert JoinToken.objects.get(pk=row.pk).last_used is not None
        assert seen.known, "the agent started no worker process"
        job = jobs.submit("test.steps", host, params={"steps": 2}, requested_by=admin, target=host,
                          idempotency_key=None)
        assert wait_job(job, timeout=60).state == "succeeded", job.error

        services.revoke_join_token(admin, row)
        revoked_at = timezone.now()
        code = wait_for(lambda: proc.poll(), timeout=30, what="the agent to exit after its token was revoked")
        text = log.read_text(errors="replace")
        assert code == agent.EX_REFUSED, text
        assert "was revoked" in text and "joined-a" in text, text
        assert Host.objects.get(pk=host.pk).last_heartbeat < revoked_at + timezone.timedelta(seconds=1)
        assert not [pid for pid, ticks in seen.known if _start_ticks(pid) == ticks], "the worker outlived its agent"
    finally:
        seen.stop()


@pytest.mark.parametrize("case", ["revoked", "unknown", "expired", "other host"])
def test_agent_with_a_bad_token_exits_before_any_worker(admin, live_redis, live_server, tmp_path, case):
    row, token = join.make_token(admin, "t", host_name="node-x" if case == "other host" else "")
    if case == "revoked":
        services.revoke_join_token(admin, row)
    elif case == "expired":
        JoinToken.objects.filter(pk=row.pk).update(expires=timezone.now() - timezone.timedelta(seconds=1))
    elif case == "unknown":
        token = token[:-4] + "AAAA"
    proc = _agent(live_redis, tmp_path, live_server, token, "--name", "refused-b")
    seen = Seen(proc)
    try:
        code = proc.wait(60)
        text = (tmp_path / "agent.log").read_text(errors="replace")
        assert code == agent.EX_REFUSED, text
        assert "refused:" in text and {"revoked": "was revoked", "unknown": "unknown join token",
                                       "expired": "expired", "other host": "is for host node-x"}[case] in text, text
        assert not seen.known, "a worker was started"
        assert not (tmp_path / "state" / "logs" / "worker.log").exists()
        assert not Host.objects.filter(name="refused-b").exists()
    finally:
        seen.stop()
