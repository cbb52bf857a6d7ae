"""Shared fixtures for the whole suite (reuse them; each cleans up what it made, by PID).

Real parts, no mocks:

``redis_server`` (session)
    A real ``redis-server`` on a free loopback port, in its own temporary directory, with persistence
    off (``--save '' --appendonly no``). Has ``.url``, ``.port``, ``.pid``. Stopped by PID at the end.
``redis_url`` (session)
    ``redis://127.0.0.1:<port>/0`` of that server.
``live_redis`` (function)
    Points THIS test process at ``redis_server``: the Channels layer becomes the Redis layer (for
    WebSocket tests that must see events from worker processes) and the Celery app sends tasks to
    that broker. Returns the URL.
``berth_worker`` (function; pulls in ``transactional_db`` and ``live_redis``)
    Factory: ``start(host_name, state_root=None, env=None) -> WorkerHandle`` spawns a REAL
    ``celery -A webapp worker -Q host.<host_name>`` subprocess sharing the test's database (SQLite file or PostgreSQL),
    with REDIS_URL, a temporary BERTH_STATE_ROOT (or the one given; reuse it to "restart" a host),
    BERTH_CONTROL_URL (pytest-django's ``live_server``: uploads and downloads travel over HTTP to this process),
    BERTH_HOST_NAME, BERTH_HEARTBEAT_SECONDS=1 (``wrap``: a command prefix that execs the worker, e.g. into
    its own mount namespace), and BERTH_TEST_HANDLERS=1 (test-only job kinds from
    workers/handlers/testing.py: ``test.fail``, ``test.sleep``, ``test.steps``). It returns once the
    worker's Host has heartbeaten. ``handle.host`` is the Host row, ``handle.kill9()`` SIGKILLs the
    worker and all its pool processes, ``handle.stop()`` shuts it down warm (TERM, then KILL),
    ``handle.log()`` returns its output. All workers are stopped by PID at teardown.
``postgres_server`` (session)
    None, or with BERTH_TEST_DB=postgres a private PostgreSQL server (tests/postgres.py) that is then the
    session's database: ``.url(db)``, ``.connections_made(db)``, ``.pid``. Stopped by PID at the end.
``wait_for`` (function)
    ``wait_for(predicate, timeout=60, what="...")`` polls until ``predicate()`` is truthy and returns
    its value, else fails with ``what``. Waiting is not a timed assertion: timeouts are generous.
``wait_job`` (function)
    ``wait_job(job, *states, timeout=60) -> Job`` reloads the job until its state is one of ``states``
    (default: any finished state).

Tests that use workers need the database in transactional mode (``berth_worker`` requests it) so the
worker processes see committed rows. The test database is a file (settings: DATABASES TEST NAME).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
from containers.management.commands.berth_run import _start_ticks, descendants, free_port  # noqa: E402
from tests.postgres import database_url  # noqa: E402

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

# A shell without job control starts background commands (`make test &`, nohup, some CI runners) with SIGINT
# ignored, and an ignored signal stays ignored across exec: every Ctrl-C test would then hang. A handler here
# becomes SIG_DFL in each child at exec, so children get SIGINT as from a terminal whatever launched the suite.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def kill_exact(pid: int, ticks: str, sig: int = signal.SIGKILL) -> None:
    """Signal `pid` only if it is still the process that started at `ticks` (no PID-reuse accidents)."""
    if _start_ticks(pid) == ticks:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the test process dies, even by SIGKILL (a killed
    session must not leave servers behind)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- what a run leaves ---------------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def _remove_default_cgroup_parent() -> Iterator[None]:
    """Engine tests and the e2e part's workers make containers under /berth/<id>: the run removes the parent
    if it made it (tests/cgroup_parent.py)."""
    from tests.cgroup_parent import parent_removed_if_made

    with parent_removed_if_made():
        yield


# --- redis -------------------------------------------------------------------------------------------

@dataclass
class RedisServer:
    port: int
    pid: int
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    import redis

    workdir = Path(tempfile.mkdtemp(prefix="berth-redis-"))
    log = workdir / "redis.log"
    proc = None
    try:
        # redis-server cannot be handed a bound socket: a port another process took between free_port()
        # and the bind (parallel test runs) is detected in its log and another port is tried.
        for _attempt in range(5):
            port = free_port()
            log.write_text("")
            proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent,
            )
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)

            def ready(proc: subprocess.Popen = proc, client: redis.Redis = client) -> str:
                if proc.poll() is not None:
                    return "exited"
                try:
                    # PING alone could reach another process's server on a reused port: ask for the PID
                    return "up" if client.info("server").get("process_id") == proc.pid else ""
                except redis.RedisError:
                    return ""

            state = _wait(ready, 30, "redis-server to answer (or exit)")
            client.close()
            if state == "up":
                break
            proc.wait()
            text = log.read_text(errors="replace")
            if "Address already in use" not in text:
                pytest.fail(f"redis-server exited: {text}")
        else:
            pytest.fail("redis-server found no free port in 5 tries")
        yield RedisServer(port=port, pid=proc.pid, dir=workdir)
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


def _point_celery_at(url: str) -> None:
    from webapp.celery import app

    if app.conf.broker_url == url:
        return
    app.conf.update(broker_url=url, result_backend=url)
    # Forget connection pools made for a previous broker URL (the next send makes new ones).
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


@pytest.fixture
def live_redis(redis_url: str, settings) -> Iterator[str]:
    settings.CHANNEL_LAYERS = {
        # socket_timeout: see CHANNEL_LAYERS in webapp/settings.py (BZPOPMIN blocks 5 s, redis-py's default).
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": 30}]}}
    }
    settings.REDIS_URL = redis_url
    _point_celery_at(redis_url)
    yield redis_url


# --- the database -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """With BERTH_TEST_DB=postgres (`make test` sets it for the end-to-end part): a private PostgreSQL server
    (tests/postgres.py's PostgresServer) started for the session and stopped by PID at its end; else None."""
    choice = os.environ.get("BERTH_TEST_DB", "sqlite")
    if choice == "sqlite":
        yield None
        return
    if choice != "postgres":
        pytest.exit(f"BERTH_TEST_DB={choice!r}: use sqlite (the default) or postgres", returncode=4)
    from tests.postgres import start_postgres

    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None, postgres_server) -> Iterator[None]:
    """pytest-django's hook before the test database is made: the session's database is `postgres_server`'s
    when there is one (test database test_berth), else the SQLite file of webapp/settings.py."""
    if postgres_server is None:
        yield
        return
    from django.db import connections

    from tests.postgres import point_django_at

    point_django_at(postgres_server.url("berth"))
    try:
        yield
    finally:
        connections.close_all()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, postgres_server) -> Iterator[None]:
    """pytest-django's test database, and at the session's end on PostgreSQL the other sessions still open on it
    ended first (asgiref's worker threads keep theirs): DROP DATABASE would wait 5 s for them, then fail."""
    yield
    if postgres_server is not None:
        import psycopg

        with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = 'test_berth' AND pid <> pg_backend_pid()")


@pytest.fixture
def berth_run_env(postgres_server) -> Iterator[dict[str, str]]:
    """Environment for a `manage.py berth_run` a test starts: on SQLite nothing (it makes its own file in its state
    root); on PostgreSQL a fresh database of `postgres_server` as DATABASE_URL, dropped at the end."""
    if postgres_server is None:
        yield {}
        return
    import psycopg

    name = f"run_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": postgres_server.url(name)}
    finally:
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(config, items) -> None:
    """Whatever starts real workers or serves the web side to other processes is end-to-end (`-m e2e`), marked
    or not: that is the part `make test` runs against PostgreSQL."""
    for item in items:
        if {"berth_worker", "live_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


# --- workers -----------------------------------------------------------------------------------------

@dataclass
class WorkerHandle:
    host_name: str
    state_root: Path
    proc: subprocess.Popen
    log_path: Path
    known: list[tuple[int, str]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host(self):
        from containers.models import Host

        return Host.objects.get(name=self.host_name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _remember_children(self) -> None:
        for item in descendants(self.pid):
            if item not in self.known:
                self.known.append(item)

    def kill9(self) -> None:
        """SIGKILL the worker and its pool processes (by PID), as a crash would."""
        self._remember_children()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        for pid, ticks in self.known:
            kill_exact(pid, ticks)
        self.proc.wait()

    def discard(self) -> None:
        """A test's end: SIGKILL at once. A warm shutdown there only waits ~2 s for Celery's pool to stop and
        proves nothing (tests of warm shutdown call stop()); the state root is cleaned by PID afterwards."""
        self.kill9()

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM lets running jobs finish), then SIGKILL whatever is left."""
        self._remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()


@pytest.fixture
def berth_worker(transactional_db, live_redis: str, live_server, settings,
                 tmp_path_factory) -> Iterator[Callable[..., WorkerHandle]]:
    from django.db import connection
    from django.utils import timezone

    from containers.models import Host

    settings.BERTH_TRANSFER_DIR = tmp_path_factory.mktemp("web-transfers")  # this test's own staging dir
    db_url = database_url(connection.settings_dict)  # the test's SQLite file or PostgreSQL database
    handles: list[WorkerHandle] = []

    def start(host_name: str, state_root: str | os.PathLike[str] | None = None,
              env: dict[str, str] | None = None, timeout: float = 60, wrap: list[str] | None = None,
              concurrency: int = 2) -> WorkerHandle:
        root = Path(state_root) if state_root else tmp_path_factory.mktemp(f"state-{host_name}")
        log_path = tmp_path_factory.mktemp("worker-log") / f"{host_name}.log"
        # Its own TMPDIR: a worker killed -9 leaves its pool's pymp-* dirs (billiard) and a cut probe's
        # bundle there, under pytest's basetemp, and not in /tmp.
        worker_tmp = tmp_path_factory.mktemp(f"tmp-{host_name}")
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": live_redis,
            "BERTH_STATE_ROOT": str(root),
            "BERTH_HOST_NAME": host_name,
            "BERTH_HEARTBEAT_SECONDS": "1",
            "BERTH_TEST_HANDLERS": "1",
            "BERTH_SECRET_KEY": "berth-tests-only-worker-key",
            # uploads and downloads travel over HTTP to this test process's web side (containers/transfer.py)
            "BERTH_CONTROL_URL": live_server.url,
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(worker_tmp),
            **(env or {}),
        }
        since = timezone.now()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [*(wrap or []), sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", f"host.{host_name}",
                 "-n", f"{host_name}@%h", "--concurrency", str(concurrency), "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent,
            )
        handle = WorkerHandle(host_name=host_name, state_root=root, proc=proc, log_path=log_path)
        handles.append(handle)

        def heartbeaten() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"worker for {host_name} exited with {proc.returncode}:\n{handle.log()[-4000:]}")
            return Host.objects.filter(name=host_name, last_heartbeat__gte=since).exists()

        _wait(heartbeaten, timeout, f"the worker of host {host_name} to heartbeat", interval=0.2)
        handle._remember_children()
        return handle

    yield start
    for handle in handles:
        handle.discard()


# --- waiting -----------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _background_unpacks_done() -> Iterator[None]:
    """A pull's layers unpack in threads of the process that pulled (workers/engine/images/unpack.py): a test
    ends when they are done, so its temp dirs go with nothing still writing into them."""
    yield
    unpack = sys.modules.get("workers.engine.images.unpack")
    if unpack is not None:
        unpack.wait_all()


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    def wait(predicate: Callable[[], Any], timeout: float = 60, what: str = "a condition",
             interval: float = 0.1) -> Any:
        return _wait(predicate, timeout, what, interval)

    return wait


@pytest.fixture
def wait_job() -> Callable[..., Any]:
    def wait(job, *states: str, timeout: float = 60):
        from containers.models import Job

        wanted = states or Job.FINISHED_STATES

        def reached():
            job.refresh_from_db()
            return job.state in wanted

        try:
            _wait(reached, timeout, f"job #{job.pk} ({job.kind}) to reach {'/'.join(wanted)}")
        except pytest.fail.Exception as failed:  # say where it stands, not where it stood when the wait began
            job.refresh_from_db()
            pytest.fail(f"{failed}: it is {job.state} ({job.progress}% {job.message!r}, error {job.error!r}, "
                        f"attempts {job.attempts}, worker {job.worker!r})")
        return job

    return wait


def pytest_configure(config) -> None:
    """Make this run's test-database directory (webapp/settings.py names it; pytest_sessionfinish removes it)."""
    try:
        from django.conf import settings
    except ImportError:
        return
    if settings.configured and "TEST" in settings.DATABASES["default"]:
        name = settings.DATABASES["default"]["TEST"].get("NAME")
        if name and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            Path(name).parent.mkdir(exist_ok=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Remove this run's temporary state root and test-database directory (see webapp/settings.py)."""
    try:
        from django.conf import settings
    except ImportError:
        return
    if not settings.configured:
        return
    tmp = Path(tempfile.gettempdir())
    for path in (Path(settings.BERTH_STATE_ROOT), tmp / f"berth-testdb-{os.getpid()}"):
        if path.parent == tmp and path.name.startswith(("berth-test-", "berth-testdb-")):
            shutil.rmtree(path, ignore_errors=True)
