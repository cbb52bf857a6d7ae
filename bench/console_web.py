"""bench/console.py's full-stack runner: Berth as `make run` runs it, for one console, and the browser's side of
that console (the WebSocket). Kept apart from the other runners, which need no web side."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class FullStack:
    """Berth as `make run` runs it, on this machine, for one console: redis-server, a migrated SQLite database,
    the ASGI web server, a Celery worker for one host with its own state root, a team operator and a running
    busybox container made through the services. `close()` stops and removes all of it, by PID and by path."""

    def __init__(self, work: Path, database_url: str | None = None) -> None:
        self.work, self.database_url = work, database_url or f"sqlite:///{work / 'berth.sqlite3'}"
        self.redis_proc = self.web = self.worker = self.row = None
        self.wroot = work / "w"  # short: the monitor's socket path must stay under 108 bytes
        self.sessions: list[str] = []
        try:
            self._up()
        except BaseException:
            self.close()
            raise

    def _start_redis(self) -> str:
        # Before Django's settings load (they read REDIS_URL once), so no import from tests/ or containers/ here.
        import redis

        def die_with_parent() -> None:  # a killed bench leaves no server behind (as tests/conftest.py's)
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

        rdir = self.work / "redis"
        rdir.mkdir()
        for _attempt in range(5):  # a port taken between choosing it and redis' bind: another one
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.redis_proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(rdir), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--logfile", str(rdir / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent)
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)

            def ready(client=client) -> str:
                if self.redis_proc.poll() is not None:
                    return "exited"
                try:  # PING alone could reach another process's server on a reused port
                    return "up" if client.info("server").get("process_id") == self.redis_proc.pid else ""
                except redis.RedisError:
                    return ""

            state = wait_until(ready, 30, "redis-server")
            client.close()
            if state == "up":
                return f"redis://127.0.0.1:{port}/0"
            self.redis_proc.wait()
        raise RuntimeError("redis-server found no free port in 5 tries")

    def _up(self) -> None:
        host = self._up_base()
        self._up_console(host)

    def _up_base(self):
        """redis, the database (migrated), the web server and one worker whose host has busybox:latest: the Host."""
        redis_url = self._start_redis()
        self.host_name = f"bench-console-{os.getpid()}"
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url, "BERTH_STATE_ROOT": str(self.work / "web"), "BERTH_HOST_NAME": self.host_name,
            "BERTH_SECRET_KEY": "berth-bench-console-" + os.urandom(16).hex()})
        import django

        django.setup()
        logging.getLogger("axes").setLevel(logging.WARNING)  # the sign-in below is no news
        from django.core.management import call_command

        from containers import jobs
        from containers.models import Host, Job
        from tests.conftest import WorkerHandle, die_with_parent
        from tests.support import start_asgi_server

        call_command("migrate", interactive=False, verbosity=0)
        self.web, port = start_asgi_server(redis_url, self.work / "web", self.work / "web.log")
        self.base = f"127.0.0.1:{port}"
        since = time.time()
        env = {**os.environ, "BERTH_STATE_ROOT": str(self.wroot), "BERTH_CONTROL_URL": f"http://{self.base}",
               "PYTHONPATH": str(REPO)}
        log = self.work / "worker.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", f"host.{self.host_name}",
                 "-n", f"{self.host_name}@%h", "--concurrency", "2", "--loglevel", "INFO", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)
        self.worker = WorkerHandle(host_name=self.host_name, state_root=self.wroot, proc=proc, log_path=log)

        def heartbeaten():
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}:\n{self.worker.log()[-3000:]}")
            h = Host.objects.filter(name=self.host_name).first()
            return h if h and h.last_heartbeat and h.last_heartbeat.timestamp() >= since - 1 else None

        host = wait_until(heartbeaten, 90, "the worker to heartbeat", 0.2)
        self.worker._remember_children()
        self.wait_job = lambda job, timeout=180: wait_until(
            lambda: (job.refresh_from_db() or job.state in Job.FINISHED_STATES) and job, timeout, f"job {job.kind}")
        seeded = self.wait_job(jobs.submit("image.seed", host, params={}))
        if seeded.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"image.seed: {seeded.error}")
        return host

    def _up_console(self, host) -> None:
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from containers import services
        from containers.models import Container, Job, Team, TeamMembership

        User = get_user_model()
        team = Team.objects.create(name="bench")
        self.lead = User.objects.create_user("bench-lead")
        op = User.objects.create_user("bench-op")
        TeamMembership.objects.create(team=team, user=self.lead, role="admin")
        TeamMembership.objects.create(team=team, user=op, role="operator")
        # Made by the team's admin for the team; the operator opens its console (what the role allows).
        self.row, job = services.create_container(self.lead, host=host, image="busybox:latest", name="bench-ws",
                                                  team=team, command=["sleep", "100000"])
        job = self.wait_job(job)
        if job.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"container.create: {job.error}")
        wait_until(lambda: Container.objects.get(pk=self.row.pk).state == "running", 60, "the container to run")
        client = Client()
        client.force_login(op)
        self.cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    def console(self, command: str = "cat") -> WebSocketEcho:
        return WebSocketEcho(self, f"ws://{self.base}/ws/containers/{self.row.pk}/console/?rows=24&cols=80&"
                                   f"command={command}")

    def close(self) -> None:
        from tests.conftest import stop_process

        problems = []
        if self.row is not None:  # through the services while the worker runs: what a user's remove does
            try:
                from containers import services

                self.row.refresh_from_db()
                job = self.wait_job(services.container_action(self.lead, self.row, "remove",
                                                              params={"force": True}), 60)
                if job.state != "succeeded":
                    problems.append(f"remove: {job.error}")
            except Exception as exc:  # noqa: BLE001 - the engine-level cleanup below removes it anyway
                problems.append(f"remove: {exc!r}")
        if self.worker is not None:
            self.worker.stop(timeout=10)
        if self.web is not None:
            stop_process(self.web)
        if self.wroot.exists():
            from tests.engine.containers.conftest import teardown_root
            from tests.support import clean_state_root

            clean_state_root(self.wroot)  # containers through the engine, then the monitor by its PID file
            teardown_root(self.wroot)  # leftovers by pid and path: cgroups, mounts, the directory
        for sid in self.sessions:  # a console's relay (workers/exec_relay.py) is detached: found by its session id
            for pid in [int(e) for e in os.listdir("/proc") if e.isdigit()]:
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"workers.exec_relay" in argv and sid.encode() in argv:
                    problems.append(f"relay of {sid} still ran (pid {pid}): killed")
                    os.kill(pid, 9)
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
                self.redis_proc.wait()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
            # settings make this dir whenever pytest is imported (TESTING): ours, by this process's pid
            shutil.rmtree(Path(tempfile.gettempdir()) / f"berth-testdb-{os.getpid()}", ignore_errors=True)
        for p in problems:
            print(f"  full stack cleanup: {p}")


class WebSocketEcho:
    """The browser's console: text frames {"type": "input"} in, the terminal's bytes back as binary frames."""

    def __init__(self, stack: FullStack, url: str) -> None:
        from websockets.sync.client import connect

        self.opened = connect(url, additional_headers={"Cookie": stack.cookie}, origin=f"http://{stack.base}",
                              open_timeout=30, compression=None)
        self.ws = self.opened.__enter__()
        first = json.loads(self.ws.recv(timeout=120))  # the session is started by a job on the host's worker
        if first.get("type") != "session":
            self.opened.__exit__(None, None, None)
            raise RuntimeError(f"console refused: {first}")
        stack.sessions.append(first["session"])

    def key(self, ch: bytes) -> float:
        t = time.perf_counter()
        self.ws.send(json.dumps({"type": "input", "data": ch.decode()}))
        buf = b""
        while ch not in buf:
            msg = self.ws.recv(timeout=10)
            if isinstance(msg, bytes):
                buf += msg
            elif json.loads(msg).get("type") in ("exit", "error"):
                raise RuntimeError(f"console ended: {msg}")
        return (time.perf_counter() - t) * 1000

    def close(self) -> None:
        try:  # Ctrl-D: cat ends, the relay records the exit, the consumer says so and closes
            self.ws.send(json.dumps({"type": "input", "data": "\x04"}))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = self.ws.recv(timeout=30)
                if isinstance(msg, str) and json.loads(msg).get("type") == "exit":
                    break
        except Exception:  # noqa: BLE001 - closed already; the stack's cleanup finds a leftover relay
            pass
        finally:
            self.opened.__exit__(None, None, None)
