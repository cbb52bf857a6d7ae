"""`manage.py berth_run` supervises its children: a worker or redis-server killed with SIGKILL is started
again (said on stdout) and the control plane works afterwards; Ctrl-C then stops every child by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from containers.management.commands.berth_run import _start_ticks, free_port, session_members

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw-admin-supervise-123"


class Run:
    def __init__(self, tmp_path: Path, extra_env: dict[str, str], tmpdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path = tmp_path / "berth_run.out"
        env = {**os.environ, "BERTH_ADMIN_PASSWORD": PASSWORD, "BERTH_HOST_NAME": "e2e-supervise",
               "BERTH_HEARTBEAT_SECONDS": "1", "PYTHONUNBUFFERED": "1",
               "TMPDIR": str(tmpdir)}  # what its killed worker's pool leaves (pymp-*) stays out of /tmp
        for var in ("REDIS_URL", "DATABASE_URL", "BERTH_STATE_ROOT", "BERTH_SECRET_KEY", "DJANGO_SECRET_KEY"):
            env.pop(var, None)
        env.update(extra_env)  # PostgreSQL in make test's end-to-end part
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "berth_run", "--root", str(tmp_path / "root"), "--port",
                 str(self.port), "--redis-port", "0", "--concurrency", "1"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: list[tuple[int, str]] = []  # every child process (pid, start ticks) met, to check/clean up

    def text(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_text(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} in berth_run's output:\n{self.text()[-4000:]}")
            time.sleep(0.2)

    def pid_of(self, name: str) -> int:
        """The current pid of a child, from the last 'started'/'restarted' line naming it."""
        found = re.findall(rf"(?:started|restarted) {name} \(pid (\d+)", self.text())
        pid = int(found[-1])
        self.remember(pid)
        return pid

    def remember(self, pid: int) -> None:
        for item in [(pid, _start_ticks(pid)), *session_members(pid, None)]:
            if item[1] and item not in self.seen:
                self.seen.append(item)

    def alive(self) -> list[int]:
        return [pid for pid, ticks in self.seen if _start_ticks(pid) == ticks and not _zombie(pid)]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, ticks in self.seen:
            if _start_ticks(pid) == ticks:
                os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def run(tmp_path, berth_run_env, tmp_path_factory):
    # berth_run binds the port itself: one taken by another process after free_port() chose it makes it exit
    # saying so, and another is tried (no collision under load).
    for _attempt in range(3):
        r = Run(tmp_path, berth_run_env, tmp_path_factory.mktemp("tmp"))
        deadline = time.monotonic() + 120
        while "Berth is up" not in r.text() and r.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if "Berth is up" in r.text() or f"port {r.port} on 127.0.0.1 is taken" not in r.text():
            break
        r.close()
    try:
        r.wait_text(r"Berth is up")
        yield r
    finally:
        r.close()


def signed_in(run: Run) -> requests.Session:
    s = requests.Session()
    page = s.get(run.url + "/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = s.post(run.url + "/login/", data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    return s


def probe_succeeds(run: Run, s: requests.Session, timeout: float = 120) -> None:
    """Queue host.probe from the dashboard and wait (polling the API) until it succeeded."""
    host = s.get(run.url + "/api/v1/hosts/?search=e2e-supervise", timeout=30).json()["results"][0]["id"]
    before = {j["id"] for j in s.get(run.url + "/api/v1/jobs/?kind=host.probe", timeout=30).json()["results"]}
    r = s.post(f"{run.url}/hosts/{host}/probe/", headers={"X-CSRFToken": s.cookies["csrftoken"]},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    [job] = [j for j in s.get(run.url + "/api/v1/jobs/?kind=host.probe", timeout=30).json()["results"]
             if j["id"] not in before]
    deadline = time.monotonic() + timeout
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            pytest.fail(f"host.probe job #{job['id']} still {job['state']}:\n{run.text()[-3000:]}")
        time.sleep(0.3)
        job = s.get(f"{run.url}/api/v1/jobs/{job['id']}/", timeout=30).json()
    assert job["state"] == "succeeded", job


def test_killed_worker_and_redis_are_restarted_and_ctrl_c_stops_all(run):
    for name in ("redis", "worker", "web"):
        run.pid_of(name)
    session = signed_in(run)
    probe_succeeds(run, session)

    # kill -9 the worker: it is started again, its pool processes do not outlive it, jobs run again.
    worker = run.pid_of("worker")
    pool = [item for item in run.seen if item[0] != worker and item in session_members(worker, None)]
    os.kill(worker, signal.SIGKILL)
    run.wait_text(rf"worker \(pid {worker}\) was killed by SIGKILL; restarting it in 1s \(restart 1\)")
    run.wait_text(rf"restarted worker \(pid \d+, was {worker}\)")
    new_worker = run.pid_of("worker")
    assert new_worker != worker
    assert not [pid for pid, ticks in pool if _start_ticks(pid) == ticks and not _zombie(pid)], \
        "the killed worker's pool processes were left running"
    probe_succeeds(run, session)

    # kill -9 redis: started again on the same port; the worker is restarted along; the dashboard works.
    redis = run.pid_of("redis")
    os.kill(redis, signal.SIGKILL)
    run.wait_text(rf"redis \(pid {redis}\) was killed by SIGKILL; restarting it in 1s")
    run.wait_text(rf"restarted redis \(pid \d+, was {redis}\)")
    run.wait_text(rf"restarted worker \(pid \d+, was {new_worker}\)")
    run.pid_of("redis"), run.pid_of("worker")
    assert session.get(run.url + "/jobs/", timeout=30).status_code == 200
    probe_succeeds(run, session)

    # Ctrl-C: every child (and what they started in their sessions) is gone, berth_run exits.
    for name in ("redis", "worker", "web"):
        run.remember(run.pid_of(name))
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(90) == 0
    assert run.alive() == [], f"left running: {run.alive()}\n{run.text()[-2000:]}"
    assert "Berth: stopping" in run.text()
