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
  BERTH_OFFLINE_JOB_TIMEOUT seconds a queued job waits for its offline host before it fails (default 600; 0 = wait
                            forever; a host's own offline_job_timeout, set by an admin, comes first)
  BERTH_WATCH_SECONDS       period of the control plane's offline watch, manage.py berth_watch (default 2)
  BERTH_API_THROTTLE_ANON   API rate for signed-out clients (default 30/min)
  BERTH_API_THROTTLE_WRITE  API rate per user for POST/PUT/PATCH/DELETE (default 120/min)
  BERTH_API_THROTTLE_READ   API rate per user for GET (default 1200/min)
  BERTH_API_LOGS_WAIT       seconds GET /api/v1/containers/{id}/logs waits for a logs job (default 30)
  BERTH_MAX_UPLOAD_BYTES    largest image upload (default 20 GiB)
  BERTH_BIND_MOUNT_ROOTS    comma-separated host dirs non-superusers may bind-mount (default: none)
  Container limits (a team's admin-set TeamLimits override these; sizes take k/m/g/t suffixes; 0 = none):
  BERTH_DEFAULT_PIDS_LIMIT / BERTH_MAX_PIDS_LIMIT       (default 2048 / 8192 processes)
  BERTH_DEFAULT_MEMORY / BERTH_MAX_MEMORY               (default 1g / 16g)
  BERTH_DEFAULT_CPUS / BERTH_MAX_CPUS                   (default 0 = no CPU quota / 0 = the host's CPUs)
  BERTH_DEFAULT_DISK / BERTH_MAX_DISK                   container writes (default 10g / 100g)
  BERTH_DEFAULT_VOLUME_SIZE / BERTH_MAX_VOLUME_SIZE     volumes (default 10g / 100g)
  BERTH_MAX_EXPANDED_UPLOAD an import/load's size once decompressed (default 32g)
  BERTH_EXPORT_MAX_AGE      seconds an export/save/logs file is kept for download (default 86400)
  BERTH_TRANSFER_DIR        the web server's own staging dir for uploads and downloads (default <state root>/web/transfers)
  BERTH_CONTROL_URL         the web server's URL as a worker reaches it, for transfers (default http://127.0.0.1:8000)
  BERTH_MAX_DOWNLOAD_BYTES  largest export/save/logs file a worker may push (default 64 GiB)
  BERTH_TRANSFER_TTL        seconds a staged upload waits for its host's worker (default 86400)
  BERTH_MOVE_TIMEOUT        seconds a move or copy waits for its target host's steps (default 3600)
  BERTH_LOGIN_FAILURE_LIMIT failed sign-ins per account, and per address, before sign-in is refused (default 10)
  BERTH_LOGIN_LOCKOUT_SECONDS  how long after the last failure those count and the refusal lasts (default 900)
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
import sys
import tempfile
from pathlib import Path

from webapp.database import database

BASE_DIR = Path(__file__).resolve().parent.parent

# pytest-django imports these settings before any conftest runs, so test defaults are chosen here:
# a per-process temporary state root, so a test run never writes into /var/lib/berth.
TESTING = "pytest" in sys.modules


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_size(name: str, default: int) -> int:
    """Bytes from "10g", "512m", "1048576"; 0 means "no limit"."""
    value = os.environ.get(name, "").strip().lower().removesuffix("ib").removesuffix("b")
    if not value:
        return default
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(value[-1], 1)
    return int(float(value.rstrip("kmgt")) * scale)


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
BERTH_OFFLINE_JOB_TIMEOUT = _env_float("BERTH_OFFLINE_JOB_TIMEOUT", 600.0)
BERTH_WATCH_SECONDS = _env_float("BERTH_WATCH_SECONDS", 2.0)
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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "containers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "containers.nul_guard.RefuseNulMiddleware",  # 400, not PostgreSQL's 500, for a NUL in a path or query
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a throttled sign-in into containers.signin_throttle's 429
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

# Databases (webapp/database.py): SQLite in the state root unless DATABASE_URL is set.
DATABASES = {"default": database(os.environ.get("DATABASE_URL"), BERTH_STATE_ROOT / "berth.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests use a FILE database (never :memory:) so that Celery worker subprocesses can open it.
    _test_dir = Path(tempfile.gettempdir()) / f"berth-testdb-{os.getpid()}"
    # Made by the pytest run that owns it (tests/conftest.py), not by every process that loads these settings.
    DATABASES["default"]["TEST"] = {"NAME": str(_test_dir / "test.sqlite3")}
    if not TESTING:
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Sign-in throttle (django-axes, counters in the database so that all web processes share them): see
# containers/signin_throttle.py. By account and by address separately; the right password is refused too.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = _env_int("BERTH_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = datetime.timedelta(seconds=_env_int("BERTH_LOGIN_LOCKOUT_SECONDS", 900))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a refusal lasts the window from the last counted failure
AXES_LOCKOUT_CALLABLE = "containers.signin_throttle.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in Berth's audit log already
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # the containers list
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
    ("vendor/xterm", BASE_DIR / "node_modules" / "@xterm" / "xterm"),
    ("vendor/xterm-fit", BASE_DIR / "node_modules" / "@xterm" / "addon-fit" / "lib"),
    ("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist"),
]
STATIC_ROOT = BERTH_STATE_ROOT / "static"

# The REST API (containers/api/). Token or session auth; JSON errors {"error": {"code", "message", "fields"}}.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "containers.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    # JSON bodies; the upload endpoints take multipart or a raw body themselves.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "containers.api.throttles.AnonThrottle",
        "containers.api.throttles.UserReadThrottle",
        "containers.api.throttles.UserWriteThrottle",
    ],
    "DEFAULT_PAGINATION_CLASS": "containers.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "containers.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
BERTH_API_THROTTLE_RATES = {
    "anon": os.environ.get("BERTH_API_THROTTLE_ANON", "30/min"),
    "write": os.environ.get("BERTH_API_THROTTLE_WRITE", "120/min"),
    "read": os.environ.get("BERTH_API_THROTTLE_READ", "1200/min"),
}
BERTH_API_LOGS_WAIT = _env_float("BERTH_API_LOGS_WAIT", 30.0)
BERTH_MAX_UPLOAD_BYTES = _env_int("BERTH_MAX_UPLOAD_BYTES", 20 << 30)
BERTH_BIND_MOUNT_ROOTS = [r.strip() for r in os.environ.get("BERTH_BIND_MOUNT_ROOTS", "").split(",") if r.strip()]
# Publishing a host port below 1024 or on an address other than loopback: superusers only, unless this is on.
BERTH_PUBLISH_ANY_PORT = os.environ.get("BERTH_PUBLISH_ANY_PORT", "").lower() in ("1", "true", "yes")
# System-wide container limits (containers/limits.py); 0 means "none" (for a maximum: no cap).
BERTH_LIMITS = {
    "default_pids_limit": _env_int("BERTH_DEFAULT_PIDS_LIMIT", 2048),
    "max_pids_limit": _env_int("BERTH_MAX_PIDS_LIMIT", 8192),
    "default_memory": _env_size("BERTH_DEFAULT_MEMORY", 1 << 30),
    "max_memory": _env_size("BERTH_MAX_MEMORY", 16 << 30),
    "default_cpus": _env_float("BERTH_DEFAULT_CPUS", 0.0),
    "max_cpus": _env_float("BERTH_MAX_CPUS", 0.0),
    "default_disk": _env_size("BERTH_DEFAULT_DISK", 10 << 30),
    "max_disk": _env_size("BERTH_MAX_DISK", 100 << 30),
    "default_volume_size": _env_size("BERTH_DEFAULT_VOLUME_SIZE", 10 << 30),
    "max_volume_size": _env_size("BERTH_MAX_VOLUME_SIZE", 100 << 30),
    "max_expanded_upload": _env_size("BERTH_MAX_EXPANDED_UPLOAD", 32 << 30),
}
BERTH_EXPORT_MAX_AGE = _env_float("BERTH_EXPORT_MAX_AGE", 24 * 3600.0)
# Transfers between the web server and hosts that share no disk with it (containers/transfer.py).
# the web server's own files, like its SQLite database above; never a host's state root (containers/transfer.py)
BERTH_TRANSFER_DIR = Path(os.environ.get("BERTH_TRANSFER_DIR") or BERTH_STATE_ROOT / "web" / "transfers")
BERTH_CONTROL_URL = os.environ.get("BERTH_CONTROL_URL") or "http://127.0.0.1:8000"
BERTH_MAX_DOWNLOAD_BYTES = _env_int("BERTH_MAX_DOWNLOAD_BYTES", 64 << 30)
BERTH_TRANSFER_TTL = _env_float("BERTH_TRANSFER_TTL", 24 * 3600.0)
BERTH_MOVE_TIMEOUT = _env_float("BERTH_MOVE_TIMEOUT", 3600.0)  # issue 18: workers/handlers/move.py
SPECTACULAR_SETTINGS = {
    "TITLE": "Berth API",
    "DESCRIPTION": "Containers, images, hosts, jobs, teams, tokens and the audit log of a Berth control plane. "
                   "Authenticate with `Authorization: Bearer <token>` (or `Token <token>`). Changes answer "
                   "202 with the Job that carries them out; follow it at /api/v1/jobs/{id}/.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_PATCH": False,
    "PREPROCESSING_HOOKS": ["containers.api.urls.schema_without_slash_twins"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "containers.api.urls.schema_upload_bodies_required"],
}

# Redis: Celery broker + result backend, and the Channels layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

if TESTING and not os.environ.get("REDIS_URL"):
    # Unit tests without a redis-server; end-to-end tests switch to the Redis layer of their fixture.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    # redis-py 8 reads with a 5 s socket timeout by default, as long as channels_redis blocks in
    # BZPOPMIN: on a busy machine an idle consumer's read then times out and its WebSocket dies.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]}}
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
# Celery closes the database connection after every task unless told to reuse it; workers/tasks.py closes it
# as Django closes a request's (close_old_connections: kept up to CONN_MAX_AGE, health-checked), so never here.
CELERY_DB_REUSE_MAX = 1 << 62

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BERTH_LOG_LEVEL", "INFO")},
}
