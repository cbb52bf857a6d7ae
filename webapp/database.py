"""DATABASES for the control plane: SQLite in the state root by default, PostgreSQL (or another) by DATABASE_URL.

Kept apart from settings.py so that tests and benchmarks build a server's settings exactly as `make run` does.

PostgreSQL connections are kept, never opened per request or per job (a connection costs a server process and,
with a password, a SCRAM exchange: bench/pg.py). Workers, the heartbeat and management commands keep theirs
(CONN_MAX_AGE, checked before reuse). An ASGI server cannot: Django runs each request in a new thread, whose
kept connection would never be used again, so it borrows from psycopg's pool instead (webapp/asgi.py sets
POOLED before the settings are read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url

# SQLite is shared by the web server and the worker processes: a busy timeout and IMMEDIATE transactions keep
# concurrent writers from failing with "database is locked".
SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}


POOLED = False  # True in an ASGI server (webapp/asgi.py), before Django's settings are read
APP_NAME = "berth"  # PostgreSQL's application_name for workers, their heartbeat and management commands
WEB_APP_NAME = "berth-web"  # ... for the web server's pooled connections


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def database(url: str | None, sqlite_path: Path, pooled: bool | None = None) -> dict[str, Any]:
    """The "default" database: `url` (DATABASE_URL) if given, else a SQLite file at `sqlite_path`. `pooled`
    (default: POOLED) takes PostgreSQL connections from a pool rather than keeping one per thread."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path), "OPTIONS": dict(SQLITE_OPTIONS)}
    db = dj_database_url.parse(url, conn_max_age=0)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    elif db["ENGINE"] == "django.db.backends.postgresql":
        pooled = POOLED if pooled is None else pooled
        # which part of Berth holds a connection, in pg_stat_activity and in the server's connection log
        db["OPTIONS"] = {"application_name": WEB_APP_NAME if pooled else APP_NAME, **db.get("OPTIONS", {})}
        pool_max = _env_int("BERTH_DB_POOL_MAX", 20)  # 0: no pool (a connection per request, as before)
        if pooled and pool_max > 0:
            # Django's pool needs CONN_MAX_AGE 0 (a connection goes back at the end of each request); the pool
            # checks a connection before lending it. A request waits at most 10 s for one, then fails.
            db["OPTIONS"] = {**db.get("OPTIONS", {}), "pool": {
                "min_size": min(_env_int("BERTH_DB_POOL_MIN", 2), pool_max), "max_size": pool_max, "timeout": 10}}
        elif not pooled:
            db["CONN_MAX_AGE"] = _env_int("BERTH_DB_CONN_MAX_AGE", 600)  # 0: a connection per job
            db["CONN_HEALTH_CHECKS"] = True  # a connection the server dropped is replaced, not failed on
    return db
