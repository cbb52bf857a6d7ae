"""Berth settings, all from the environment with sane defaults.

Environment variables:
  BERTH_STATE_ROOT          host state root (default /var/lib/berth)
  BERTH_HOST_NAME           name of this host (default: the machine's hostname)
  DATABASE_URL              e.g. postgres://user:pw@host/db (default: SQLite in the state root)
  REDIS_URL                 broker, result backend and channel layer (default redis://127.0.0.1:6379/0)
  BERTH_SECRET_KEY          Django secret key (default: generated once into <state root>/secret_key)
  BERTH_DEBUG=1             Django DEBUG
  BERTH_ALLOWED_HOSTS       comma-separated (default 127.0.0.1,localhost,[::1])
  BERTH_HEARTBEAT_SECONDS   worker heartbeat period (default 5)
  BERTH_HOST_OFFLINE_AFTER  seconds without heartbeat before a host shows offline (default 15)
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import tempfile
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

# pytest-django imports these settings before any conftest runs, so test defaults are chosen here:
# a per-process temporary state root, so a test run never writes into /var/lib/berth.
TESTING = "pytest" in sys.modules


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


if os.environ.get("BERTH_STATE_ROOT"):
    BERTH_STATE_ROOT = Path(os.environ["BERTH_STATE_ROOT"])
elif TESTING:
    BERTH_STATE_ROOT = Path(tempfile.gettempdir()) / f"berth-test-{os.getpid()}"
else:
    BERTH_STATE_ROOT = Path("/var/lib/berth")

BERTH_HOST_NAME = os.environ.get("BERTH_HOST_NAME") or socket.gethostname()
BERTH_HEARTBEAT_SECONDS = _env_float("BERTH_HEARTBEAT_SECONDS", 5.0)
BERTH_HOST_OFFLINE_AFTER = _env_float("BERTH_HOST_OFFLINE_AFTER", 15.0)
# A job whose worker died is re-queued this many times in total before it is failed.
BERTH_JOB_MAX_ATTEMPTS = _env_int("BERTH_JOB_MAX_ATTEMPTS", 3)

DEBUG = os.environ.get("BERTH_DEBUG", "") == "1"


def _secret_key() -> str:
    key = os.environ.get("BERTH_SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    if TESTING:
        return "berth-tests-only-" + "x" * 40
    path = BERTH_STATE_ROOT / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    BERTH_STATE_ROOT.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # O_EXCL: if two processes race, the loser reads the winner's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("BERTH_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("BERTH_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "containers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

# Databases. SQLite is shared by the web server and the worker processes: a busy timeout and
# IMMEDIATE transactions keep concurrent writers from failing with "database is locked".
_SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BERTH_STATE_ROOT / "berth.sqlite3"),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(_SQLITE_OPTIONS)
    # Tests use a FILE database (never :memory:) so that Celery worker subprocesses can open it.
    _test_dir = Path(tempfile.gettempdir()) / f"berth-testdb-{os.getpid()}"
    DATABASES["default"]["TEST"] = {"NAME": str(_test_dir / "test.sqlite3")}
    if TESTING:
        _test_dir.mkdir(exist_ok=True)
    else:
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "hosts"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Browser libraries installed by `make npm` (package.json), served as /static/vendor/<file>.
    ("vendor", BASE_DIR / "node_modules" / "ansi_up"),
]
STATIC_ROOT = BERTH_STATE_ROOT / "static"

# Redis: Celery broker + result backend, and the Channels layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

if TESTING and not os.environ.get("REDIS_URL"):
    # Unit tests without a redis-server; end-to-end tests switch to the Redis layer of their fixture.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True  # job outcomes live in the Job row, not in the result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = f"host.{BERTH_HOST_NAME}"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BERTH_LOG_LEVEL", "INFO")},
}
