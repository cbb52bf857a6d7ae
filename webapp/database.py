"""DATABASES for the control plane: SQLite in the state root by default, PostgreSQL (or another) by DATABASE_URL.

Kept apart from settings.py so that tests and benchmarks build a server's settings exactly as `make run` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

# SQLite is shared by the web server and the worker processes: a busy timeout and IMMEDIATE transactions keep
# concurrent writers from failing with "database is locked".
SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}


def database(url: str | None, sqlite_path: Path) -> dict[str, Any]:
    """The "default" database: `url` (DATABASE_URL) if given, else a SQLite file at `sqlite_path`."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path), "OPTIONS": dict(SQLITE_OPTIONS)}
    db = dj_database_url.parse(url, conn_max_age=0)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    return db
