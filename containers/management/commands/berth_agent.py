"""`python manage.py berth_agent` (what `make agent` calls): join this machine to a control plane as a host.

    manage.py berth_agent --control-redis URL --database URL --token TOKEN [--name NAME] [--labels k=v,...]

It checks the join token against the control plane's database (its hash; not revoked, not expired),
registers or updates the Host row (with the token it joined with and its labels), then starts this host's
Celery worker — berth_run's worker command — against that Redis and database, and supervises it: a worker
that dies is started again after a backoff, as berth_run does. A refused token stops it before any worker
starts; a token revoked later makes the worker stop at its next heartbeat (workers/agent.py), and the agent
then exits saying why. Both exit with status 77 (EX_REFUSED). Ctrl-C or SIGTERM stops the worker by PID.

The URLs are read by Django's settings when the process starts, so given on the command line they are put
in the environment and the command runs itself again (the token travels in the environment, not in argv).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from workers.agent import EX_REFUSED

from .berth_run import REPO, Child, worker_command

REEXEC_MARK = "BERTH_AGENT_REEXEC"


class Command(BaseCommand):
    help = "Join this machine to a Berth control plane with a join token and run its worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--control-redis", default=os.environ.get("REDIS_URL", ""),
                            help="the control plane's Redis, e.g. rediss://:password@host:6380/0?ssl_cert_reqs="
                                 "required (default: REDIS_URL)")
        parser.add_argument("--database", default=os.environ.get("DATABASE_URL", ""),
                            help="the control plane's database, e.g. postgresql://user:pass@host/db?sslmode="
                                 "verify-full (default: DATABASE_URL)")
        parser.add_argument("--token", default=os.environ.get("BERTH_JOIN_TOKEN", ""),
                            help="a join token an admin made on the Hosts page (default: BERTH_JOIN_TOKEN)")
        parser.add_argument("--name", default=os.environ.get("BERTH_HOST_NAME", ""),
                            help="this host's name (default: the token's host name, else BERTH_HOST_NAME)")
        parser.add_argument("--labels", default=None, help="this host's labels, e.g. ssd,zone=a (replaces them)")
        parser.add_argument("--control-url", default=os.environ.get("BERTH_CONTROL_URL", ""),
                            help="the web server's URL as this machine reaches it, for uploads and downloads")
        parser.add_argument("--concurrency", type=int, default=2, help="job processes of the worker")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def handle(self, *args, **opts) -> None:
        redis_url, database, token = opts["control_redis"], opts["database"], opts["token"]
        missing = [flag for flag, value in (("--control-redis", redis_url), ("--database", database),
                                            ("--token", token)) if not value]
        if missing:
            raise CommandError(f"give {', '.join(missing)} (see README: Join a second machine)")
        if os.environ.get("DATABASE_URL") != database or os.environ.get("REDIS_URL") != redis_url:
            self._reexec(redis_url, database, token, opts)
        from containers import join

        labels = None
        if opts["labels"] is not None:
            try:
                labels = join.parse_labels(opts["labels"])
            except join.LabelError as exc:
                raise CommandError(f"--labels: {exc}") from None
        self._ping_redis(redis_url)
        try:
            host = join.join(token, opts["name"], labels)
        except join.JoinRefused as exc:
            raise CommandError(f"refused: {exc}", returncode=EX_REFUSED) from None
        except DatabaseError as exc:
            raise CommandError(f"cannot use the control plane's database: {exc}") from None
        self._say(f"Berth agent: joined as host {host.name} with token {host.join_token.name}; "
                  f"labels {host.labels or '{}'}")
        self._run(host.name, redis_url, database, opts)

    def _reexec(self, redis_url: str, database: str, token: str, opts) -> None:
        """Run this command again with the URLs in the environment, where settings read them."""
        if os.environ.get(REEXEC_MARK):
            raise CommandError("DATABASE_URL/REDIS_URL did not take effect")
        env = {**os.environ, "DATABASE_URL": database, "REDIS_URL": redis_url, "BERTH_JOIN_TOKEN": token,
               REEXEC_MARK: "1"}
        if opts["control_url"]:
            env["BERTH_CONTROL_URL"] = opts["control_url"]
        argv = [sys.executable, str(REPO / "manage.py"), "berth_agent", "--concurrency", str(opts["concurrency"])]
        if opts["name"]:
            argv += ["--name", opts["name"]]
        if opts["labels"] is not None:
            argv += ["--labels", opts["labels"]]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)

    def _ping_redis(self, url: str) -> None:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=10, socket_timeout=10).ping()
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach the control plane's Redis: {exc}") from None

    def _run(self, host_name: str, redis_url: str, database: str, opts) -> None:
        root = Path(settings.BERTH_STATE_ROOT)
        logs = root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("BERTH_JOIN_TOKEN", REEXEC_MARK)}
        env.update({"DATABASE_URL": database, "REDIS_URL": redis_url, "BERTH_HOST_NAME": host_name,
                    "BERTH_STATE_ROOT": str(root), "DJANGO_SETTINGS_MODULE": "webapp.settings",
                    "PYTHONPATH": str(REPO) + (":" + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH")
                                               else "")})
        if opts["control_url"]:
            env["BERTH_CONTROL_URL"] = opts["control_url"]
        self.stopping = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        worker = Child("worker", worker_command(host_name, opts["concurrency"]), env, logs / "worker.log")
        self._say(f"started worker (pid {worker.pid}) for queue host.{host_name}, log {worker.log_path}")
        try:
            self._supervise(worker, host_name)
        finally:
            if worker.alive():
                self._say(f"stopping worker (pid {worker.pid})")
            worker.stop(timeout=30)

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _supervise(self, worker: Child, host_name: str) -> None:
        from containers import join

        while not self.stopping:
            if worker.restart_at is None and not worker.alive():
                close_old_connections()
                why = join.refusal(host_name)
                if worker.proc.returncode == EX_REFUSED or why:
                    raise CommandError(why or f"the worker was refused; last lines of {worker.log_path}:\n"
                                              f"{worker.tail(5)}", returncode=EX_REFUSED)
                delay = worker.schedule_restart()
                self._say(f"worker (pid {worker.pid}) {worker.exit_text()}; restarting it in {delay:.0f}s. "
                          f"Last lines of {worker.log_path}:\n{worker.tail(5)}")
            elif worker.restart_at is not None and time.monotonic() >= worker.restart_at:
                old = worker.pid
                worker.restart()
                self._say(f"restarted worker (pid {worker.pid}, was {old})")
            time.sleep(0.2)
