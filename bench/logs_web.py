"""bench/logs.py's web side: the ASGI server of `make run` with its database and a signed-in user, and a
WebSocket client of a container's live logs (the browser's side of the log viewer)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def asgi_name() -> str:
    from containers.management.commands.berth_run import asgi_server_command

    return asgi_server_command("127.0.0.1", 0)[2]


def free_port() -> int:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:

    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start:\n{log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.1)


# --- the web side: redis, django db, the ASGI server ------------------------------------------------

class Web:
    def __init__(self, base: Path):
        self.base = base
        self.procs: list[subprocess.Popen] = []
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        (base / "redis").mkdir()
        log = base / "redis" / "redis.log"
        self.procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.redis_port), "--bind",
             "127.0.0.1", "--dir", str(base / "redis"), "--save", "", "--appendonly", "no", "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_port(self.redis_port, self.procs[-1], "redis-server", log)
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "PYTHONPATH": str(REPO),
                    "DATABASE_URL": f"sqlite:///{base / 'web.sqlite3'}", "REDIS_URL": self.redis_url,
                    "BERTH_STATE_ROOT": str(base / "web"), "BERTH_SECRET_KEY": uuid.uuid4().hex * 2}
        os.environ.update({k: self.env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL",
                                                    "BERTH_STATE_ROOT", "BERTH_SECRET_KEY")})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model
        from django.test import Client

        from containers.models import Host

        self.user = get_user_model().objects.create_user("bench", password=uuid.uuid4().hex)
        self.host = Host.objects.create(name="bench-host")
        client = Client()
        client.force_login(self.user)
        self.cookie = f"sessionid={client.cookies['sessionid'].value}"
        from containers.management.commands.berth_run import asgi_server_command

        self.port = free_port()
        log = base / "web.log"
        with open(log, "wb") as f:  # the server `make run` uses
            self.procs.append(subprocess.Popen(asgi_server_command("127.0.0.1", self.port), cwd=REPO, env=self.env,
                                               stdout=f, stderr=subprocess.STDOUT, start_new_session=True))
        wait_port(self.port, self.procs[-1], "the ASGI server", log)

    def container_row(self, engine_id: str) -> int:
        from containers.models import Container

        return Container.objects.create(name=f"b{engine_id[:8]}", host=self.host, owner=self.user,
                                         engine_id=engine_id, state="running").pk

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


class Follower:
    """A WebSocket client of /ws/containers/<pk>/logs/ in a thread; records (arrival ns, message)."""

    def __init__(self, web: Web, pk: int):
        import threading

        self.url = f"ws://127.0.0.1:{web.port}/ws/containers/{pk}/logs/?tail=0"
        self.headers = {"Cookie": web.cookie, "Origin": f"http://127.0.0.1:{web.port}"}
        self.messages: list[tuple[int, dict]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise SystemExit("the logs WebSocket did not answer")

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, additional_headers=self.headers, max_size=None) as ws:
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                now = time.time_ns()
                msg = json.loads(raw)
                if msg.get("tail"):
                    self.ready.set()
                    continue
                self.messages.append((now, msg))

    def lines(self) -> list[tuple[int, dict]]:
        return [(t, line) for t, m in self.messages for line in m["lines"]]

    def accounted(self) -> int:
        """Lines sent + told dropped ("dropped" counts the web side's sampling and the lines the monitor left out
        of the live stream, which it counts in berth:logs:<id>:skipped)."""
        return len(self.lines()) + sum(m["dropped"] for _, m in self.messages)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
