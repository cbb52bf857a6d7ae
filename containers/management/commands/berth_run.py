"""`python manage.py berth_run` (what `make run` calls): bring up Berth on this machine.

Migrates, ensures the admin user, starts its own redis-server, one Celery worker for this host and
uvicorn, prints the URL and the login, and stops every child (by PID) on Ctrl-C or SIGTERM.

It supervises its children: one that dies is started again with the same command, port and log, after a
backoff that doubles from 1 s up to 30 s (reset once it has stayed up for a minute), and each restart is
said on stdout. A restarted redis-server also restarts the worker, which re-sends the queued jobs whose
messages Redis may have lost. The leftovers of a dead child (e.g. a killed worker's pool processes, which
are in its session) are killed by PID first.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

REPO = Path(settings.BASE_DIR)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asgi_server_command(bind: str, port: int, fd: int | None = None) -> list[str]:
    """The web server (webapp/serve.py: uvicorn serving webapp.asgi). `fd`: serve on this already bound
    socket instead (tests bind port 0 themselves, so no other process can take the port)."""
    where = ["--fd", str(fd)] if fd is not None else ["--host", bind, "--port", str(port)]
    return [sys.executable, "-m", "webapp.serve", *where]


def worker_command(host_name: str, concurrency: int = 2) -> list[str]:
    """The Celery worker of one host (queue host.<name>): what berth_run starts here and berth_agent on a
    joining machine."""
    return [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", f"host.{host_name}",
            "-n", f"{host_name}@%h", "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"]


def _start_ticks(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def session_members(sid: int, since_ticks: str | None) -> list[tuple[int, str]]:
    """(pid, start ticks) of the processes still in the session `sid` of a dead session leader that started
    at `since_ticks`: a child's orphans. The leader's pid itself is skipped (after its death that number may
    be anyone's), as is anything started before it (not its offspring)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == sid:
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 19 and fields[3] == str(sid) and (since_ticks is None or int(fields[19]) >= int(since_ticks)):
            found.append((int(entry), fields[19]))
    return found


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start ticks) of the live descendants of `pid`, to kill stragglers by id later."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            ticks = _start_ticks(child)
            if ticks:
                found.append((child, ticks))
                todo.append(child)
    return found


BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a child up this long starts its next backoff from BACKOFF_FIRST again


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv, self.env = argv, env
        self.log_path = log_path
        self.restarts = 0
        self.backoff = BACKOFF_FIRST
        self.restart_at: float | None = None
        self._start()

    def _start(self) -> None:
        with open(self.log_path, "ab") as log:
            # Own session: Ctrl-C reaches only berth_run, which then stops the children in order.
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()
        self.ticks = _start_ticks(self.proc.pid)

    def schedule_restart(self) -> float:
        """Note the death; returns the delay before restart() (doubling, reset after a stable run)."""
        if time.monotonic() - self.started >= STABLE_AFTER:
            self.backoff = BACKOFF_FIRST
        delay = self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.restart_at = time.monotonic() + delay
        return delay

    def restart(self) -> None:
        """Kill what the dead process left in its session (by PID), then start the same command again."""
        self.kill_leftovers()
        self.restarts += 1
        self.restart_at = None
        self._start()

    def kill_leftovers(self) -> None:
        for pid, ticks in session_members(self.pid, self.ticks):
            if _start_ticks(pid) == ticks:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def exit_text(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with {code}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float) -> None:
        if not self.alive():
            self.kill_leftovers()
            return
        stragglers = descendants(self.pid)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, ticks in stragglers:
            if _start_ticks(pid) == ticks:
                os.kill(pid, signal.SIGKILL)


class Command(BaseCommand):
    help = "Run Berth on this machine: redis-server, a Celery worker for this host and the dashboard (uvicorn)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--root", help="state root (default: BERTH_STATE_ROOT or /var/lib/berth)")
        parser.add_argument("--bind", default=os.environ.get("BERTH_BIND", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("BERTH_HTTP_PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2, help="job processes of the worker")
        parser.add_argument("--redis-port", type=int, default=int(os.environ.get("BERTH_REDIS_PORT", "6379")),
                            help="port of the redis-server started here (taken or 0: a free one)")

    def handle(self, *args, **opts) -> None:
        root = Path(settings.BERTH_STATE_ROOT)
        if opts["root"] and Path(opts["root"]).resolve() != root.resolve():
            raise CommandError("--root must be given before settings load: use manage.py berth_run --root DIR")
        root.mkdir(parents=True, exist_ok=True)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        self.children: list[Child] = []
        self.stopping = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._run(root, logs, opts)
        finally:
            self._stop_all()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _run(self, root: Path, logs: Path, opts) -> None:
        host_name = settings.BERTH_HOST_NAME
        self._say(f"Berth: state root {root}, host {host_name}")
        call_command("migrate", interactive=False, verbosity=0)
        login = self._ensure_admin()

        env = {**os.environ, "BERTH_STATE_ROOT": str(root), "BERTH_HOST_NAME": host_name,
               "DJANGO_SETTINGS_MODULE": "webapp.settings",
               "PYTHONPATH": str(REPO) + (":" + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
        redis_url = self._start_redis(root, logs, env, opts["redis_port"])
        env["REDIS_URL"] = redis_url
        self._use_redis(redis_url)

        # The worker reaches this web server for uploads and downloads (containers/transfer.py).
        local = "127.0.0.1" if opts["bind"] in ("0.0.0.0", "::") else opts["bind"]
        env.setdefault("BERTH_CONTROL_URL", f"http://{local}:{opts['port']}")
        self.worker = self._spawn("worker", worker_command(host_name, opts["concurrency"]), env, logs)
        if not port_free(opts["port"], opts["bind"]):
            raise CommandError(f"port {opts['port']} on {opts['bind']} is taken; use --port or BERTH_HTTP_PORT")
        web = self._spawn("web", asgi_server_command(opts["bind"], opts["port"]), env, logs)
        self._wait(lambda: not port_free(opts["port"], opts["bind"]), 60, web, "the web server to listen")
        host = self._wait(lambda: self._online_host(host_name), 90, self.worker, "the worker to heartbeat")
        self._seed_images(host)
        self._start_watch()

        url = f"http://{'127.0.0.1' if opts['bind'] in ('0.0.0.0', '::') else opts['bind']}:{opts['port']}/"
        self._say("")
        self._say(f"  Berth is up: {url}")
        self._say(f"  {login}")
        self._say(f"  host {host_name} online; redis {redis_url}; logs in {logs}")
        self._say("  Ctrl-C stops everything.")
        self._say("")
        while not self.stopping:
            self._supervise()
            time.sleep(0.2)
        self._say("Berth: stopping…")

    def _supervise(self) -> None:
        """Restart dead children after their backoff; a restarted redis takes the worker along."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None and not child.alive():
                delay = child.schedule_restart()
                self._say(f"{child.name} (pid {child.pid}) {child.exit_text()}; restarting it in {delay:.0f}s "
                          f"(restart {child.restarts + 1}). Last lines of {child.log_path}:\n{child.tail(5)}")
            elif child.restart_at is not None and now >= child.restart_at and not self.stopping:
                old = child.pid
                child.restart()
                self._say(f"restarted {child.name} (pid {child.pid}, was {old})")
                if child.name == "redis":
                    self._restart_dependents_of_redis()

    def _restart_dependents_of_redis(self) -> None:
        """Redis may have lost queued messages: a fresh worker re-sends its host's queued jobs at start."""
        for child in self.children:
            if child.name == "worker" and child.alive() and child.restart_at is None:
                old = child.pid
                self._say(f"restarting worker (pid {old}) after redis' restart, to re-send queued jobs")
                child.stop(timeout=30)
                child.restart()
                self._say(f"restarted worker (pid {child.pid}, was {old})")

    # --- pieces ---

    def _ensure_admin(self) -> str:
        User = get_user_model()
        username = os.environ.get("BERTH_ADMIN_USER", "admin")
        password = os.environ.get("BERTH_ADMIN_PASSWORD")
        user = User.objects.filter(username=username).first()
        if user is None:
            generated = not password
            password = password or secrets.token_urlsafe(12)
            User.objects.create_superuser(username, password=password)
            if generated:
                return f"login: {username} / {password}   (generated now and shown only once)"
            return f"login: {username} / the password in BERTH_ADMIN_PASSWORD"
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
            return f"login: {username} / the password in BERTH_ADMIN_PASSWORD"
        return f"login: {username} (password unchanged; set BERTH_ADMIN_PASSWORD to reset it)"

    def _start_redis(self, root: Path, logs: Path, env: dict[str, str], port: int) -> str:
        if os.environ.get("REDIS_URL"):
            self._say(f"using REDIS_URL={os.environ['REDIS_URL']}")
            return os.environ["REDIS_URL"]
        server = shutil.which("redis-server")
        if not server:
            raise CommandError("redis-server not found (make install puts it there: apt-get install redis-server)")
        port = port if port and port_free(port) else free_port()
        data = root / "redis"
        data.mkdir(exist_ok=True)
        child = self._spawn("redis", [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                                      "--save", "60 1", "--appendonly", "no", "--daemonize", "no"], env, logs)
        self._wait(lambda: not port_free(port), 30, child, "redis-server to listen")
        return f"redis://127.0.0.1:{port}/0"

    def _use_redis(self, url: str) -> None:
        """Point this process (seed job submission, events) at the redis chosen above."""
        from webapp.celery import app

        settings.REDIS_URL = url
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
        }
        app.conf.update(broker_url=url, result_backend=url)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Child:
        child = Child(name, argv, env, logs / f"{name}.log")
        self.children.append(child)
        self._say(f"started {name} (pid {child.pid}), log {child.log_path}")
        return child

    def _online_host(self, name: str):
        from containers.models import Host

        host = Host.objects.filter(name=name).first()
        return host if host is not None and host.online else None

    def _wait(self, predicate, timeout: float, child: Child, what: str):
        deadline = time.monotonic() + timeout
        while not self.stopping:
            value = predicate()
            if value:
                return value
            if not child.alive():
                raise CommandError(f"{child.name} exited while waiting for {what}:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise CommandError(f"gave up waiting for {what}; see {child.log_path}")
            time.sleep(0.2)
        raise CommandError("interrupted")

    def _seed_images(self, host) -> None:
        from containers import jobs
        from workers import handlers

        if "image.seed" in handlers.known_kinds():
            job = jobs.submit("image.seed", host, params={}, requested_by=None, target=host,
                              idempotency_key=None)
            self._say(f"queued job #{job.pk}: image.seed (default busybox image)")

    def _start_watch(self) -> None:
        """The offline watch (containers/offline_watch.py) as a thread of this process: the control plane's
        own loop, alive whatever the hosts do; manage.py berth_watch runs the same where berth_run is not used."""
        from containers.offline_watch import Watch

        self.watch_stopping = threading.Event()
        thread = threading.Thread(target=Watch().run, args=(settings.BERTH_WATCH_SECONDS, self.watch_stopping),
                                  name="berth-offline-watch", daemon=True)
        thread.start()
        self._say(f"watching heartbeats: a host is offline {settings.BERTH_HOST_OFFLINE_AFTER:g}s after its last")

    def _stop_all(self) -> None:
        if getattr(self, "watch_stopping", None) is not None:
            self.watch_stopping.set()
        # Web first (no new work), then the worker (lets running jobs finish briefly), then redis.
        for child in reversed(self.children):
            if child.alive():
                self._say(f"stopping {child.name} (pid {child.pid})")
            child.stop(timeout=30 if child.name == "worker" else 10)
        self.children.clear()
