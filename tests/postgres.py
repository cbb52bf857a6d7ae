"""A private PostgreSQL server for tests and benchmarks (Debian's `postgresql`), started and stopped by PID.

``start_postgres()`` runs ``initdb`` into a new temporary directory as the ``postgres`` user (PostgreSQL refuses
to run as root), then ``postgres`` itself, listening on 127.0.0.1 at a free port (another is tried if the port
was taken meanwhile) with password authentication, and its unix socket inside that directory. Durability is
off (fsync, synchronous commit, full-page writes) unless asked for: test data lives for one run. ``PostgresServer.stop()`` ends
it by PID (fast shutdown, then SIGKILL) and removes the directory. Nothing here imports Django, so the server
can be started before Django's settings are read.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "berth"  # the server's superuser (made by initdb); the tests' Django connects as it


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    port: int
    pid: int
    dir: Path
    password: str
    proc: subprocess.Popen

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def connections_made(self, dbname: str, application_name: str | None = None) -> int:
        """Connections opened to `dbname` since the start (the server logs each as it is authorized, with the
        application_name the client gave, if any); only those named `application_name` if given."""
        import re

        text = (self.dir / "postgres.log").read_text(errors="replace")
        named = rf" application_name={re.escape(application_name)}" if application_name else ""
        pattern = rf"connection authorized: user={USER} database={re.escape(dbname)}{named}(?:\s|$)"
        return len(re.findall(pattern, text, re.M))

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT: sessions are ended, no waiting for clients), SIGKILL after 30 s; then the
        directory is removed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _as_postgres_user() -> tuple[int, int]:
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _drop_to(uid: int, gid: int, die_with_parent: bool):
    import ctypes  # here: after setuid the child may not read the interpreter's files (under /root)

    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        os.setgid(gid)
        os.setgroups([])
        os.setuid(uid)
        if die_with_parent:  # after setuid: a change of credentials clears the parent-death signal
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(data: Path, pid: int) -> bool:
    """postmaster.pid names this process and says "ready" (its 8th line): no connection needed, and never the
    answer of another server that holds a reused port."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def start_postgres(timeout: float = 60, max_connections: int = 300, durable: bool = False) -> PostgresServer:
    """initdb + postgres in a new temporary directory; returns once the server accepts connections. The caller
    stops it with ``.stop()`` (also on failure: nothing is left behind if this raises). `durable` keeps the
    server's defaults (fsync, synchronous commit), as a production server runs: for benchmarks."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian's `postgresql`; `make install` installs it)")
    uid, gid = _as_postgres_user()
    work = Path(tempfile.mkdtemp(prefix="berth-pg-"))
    proc: subprocess.Popen | None = None
    try:
        os.chown(work, uid, gid)
        data, password = work / "data", secrets.token_hex(16)
        pwfile = work / "pw"
        pwfile.write_text(password + "\n")
        os.chown(pwfile, uid, gid)
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile), "--auth-host=scram-sha-256",
             "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            preexec_fn=_drop_to(uid, gid, False), capture_output=True, text=True, cwd=work)
        pwfile.unlink()
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stdout}{init.stderr}")
        log = work / "postgres.log"
        for _attempt in range(5):
            port = _free_port()
            with open(log, "wb") as out:
                os.chown(log, uid, gid)
                proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(work),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"max_connections={max_connections}",
                     *([] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                           "-c", "full_page_writes=off"]),
                     "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning",
                     "-c", "log_connections=on"],  # counted by connections_made()
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=work,
                    preexec_fn=_drop_to(uid, gid, True))
            deadline = time.monotonic() + timeout
            while proc.poll() is None and not _ready(data, proc.pid):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not get ready in {timeout:.0f}s: {log.read_text(errors='replace')}")
                time.sleep(0.05)
            if proc.poll() is None:
                return PostgresServer(port=port, pid=proc.pid, dir=work, password=password, proc=proc)
            text = log.read_text(errors="replace")
            if "could not bind" not in text and "Address already in use" not in text:
                raise RuntimeError(f"postgres exited with {proc.returncode}: {text}")
        raise RuntimeError("postgres found no free port in 5 tries")
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        raise


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL that makes another process (a worker, a web server) open the database of `settings_dict`
    (a Django connection's, after the test database was made): the same SQLite file or PostgreSQL database."""
    from urllib.parse import quote

    engine, name = settings_dict["ENGINE"], settings_dict["NAME"]
    if engine == "django.db.backends.sqlite3":
        assert name and name != ":memory:" and "mode=memory" not in str(name), "other processes need a file DB"
        return f"sqlite:///{name}"
    if engine == "django.db.backends.postgresql":
        user, password = quote(settings_dict["USER"], safe=""), quote(settings_dict["PASSWORD"], safe="")
        return f"postgresql://{user}:{password}@{settings_dict['HOST']}:{settings_dict['PORT']}/{quote(name, safe='')}"
    raise ValueError(f"no URL for database engine {engine}")


def point_django_at(url: str, test_name: str = "test_berth") -> None:
    """Make this process's Django use the database at `url`, built as `make run` builds it (webapp/database.py),
    before the test database is made from it: settings.DATABASES["default"] is changed in place (Django's
    connection handler holds that same dict) and connections opened so far are closed and forgotten."""
    from django.conf import settings
    from django.db import connections

    from webapp.database import database

    for conn in connections.all(initialized_only=True):
        conn.close()
        del connections[conn.alias]
    default = settings.DATABASES["default"]
    default.clear()
    default.update(database(url, Path("unused"), pooled=False))  # no ASGI server here, whatever was imported
    # Threads of this process (live_server's, Channels' executors) close theirs after each use, as before: the
    # test database is dropped at the end, which PostgreSQL refuses while anyone is connected to it.
    default["CONN_MAX_AGE"] = 0
    default["TEST"] = {"NAME": test_name}
    connections.configure_settings(settings.DATABASES)  # Django's defaults for the keys the new dict lacks
