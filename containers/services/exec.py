"""The way in: exec sessions, top, stats and files of a container (permission, validation, audit, job).

exec, console, file download and upload need the operator role ("container.exec", "container.archive_get",
"container.archive_put", "container.files"); viewers may read stats and top. Every exec session is audited
when it starts (who, command, when) and when it ends (its exit code, written by the host's relay)."""

from __future__ import annotations

import re
import shlex
import time
from typing import Any

from django.db import transaction

from .. import audit, transfer, transfer_files
from .. import jobs as job_dispatch
from ..models import Container, Job
from .common import ServiceError, _authorize, _bool, _int, _refuse
from .uploads import _check_upload, _discard_staged, _stage_upload, discard_upload

MAX_PATH = 4096
MAX_INPUT = 64 * 1024
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?")
MAX_ARGS = 256


def _running(user, request, kind: str, container: Container) -> None:
    if container.state not in (Container.State.RUNNING,):
        raise _refuse(request, user, kind, container,
                      ServiceError("conflict", f"container {container.name} is {container.state}, not running: "
                                               "start it first"))


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ServiceError("invalid", f"command: {exc}", field="command") from None
    if (not isinstance(value, list) or not value or len(value) > MAX_ARGS
            or not all(isinstance(a, str) and "\x00" not in a and len(a) <= 8192 for a in value) or not value[0]):
        raise ServiceError("invalid", "command must be a non-empty list of strings (or one command line)",
                           field="command")
    return value


def _path(value: Any, field: str = "path") -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\x00" in value or len(value) > MAX_PATH:
        raise ServiceError("invalid", f"{field} must be an absolute path in the container", field=field)
    return value


def _env(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    if not isinstance(value, list) or not all(isinstance(e, str) and "=" in e and not e.startswith("=")
                                              and "\x00" not in e for e in value):
        raise ServiceError("invalid", "env must be a list of KEY=VALUE strings", field="env")
    return value


def _submit(request, user, kind: str, container: Container, params: dict, detail: dict | None = None) -> Job:
    job = job_dispatch.submit(kind, container.host, params=params, requested_by=user, target=container)
    audit.record(request, user, kind, container, "ok", {"job": job.pk, **(detail or {})}, status_code=202)
    return job


def start_exec(user, container: Container, *, command: Any, user_spec: Any = None, env: Any = None,
               workdir: Any = None, tty: Any = False, interactive: Any = None, rows: Any = None,
               cols: Any = None, request=None) -> Job:
    """Queue an exec session in a running container; the job's result names the session."""
    kind = "container.exec"
    _authorize(request, user, kind, container)
    try:
        params = {"command": _command(command), "env": _env(env), "tty": _bool(tty, "tty"),
                  "rows": _int(rows, "rows", low=1, high=1000), "cols": _int(cols, "cols", low=1, high=1000)}
        params["interactive"] = params["tty"] if interactive is None else _bool(interactive, "interactive")
        if user_spec not in (None, ""):
            if not isinstance(user_spec, str) or not _USER.fullmatch(user_spec):
                raise ServiceError("invalid", "user must be a name or uid[:gid]", field="user")
            params["user"] = user_spec
        if workdir not in (None, ""):
            params["workdir"] = _path(workdir, "workdir")
    except ServiceError as exc:
        raise _refuse(request, user, kind, container, exc) from None
    _running(user, request, kind, container)
    return _submit(request, user, kind, container, params, {"command": params["command"], "tty": params["tty"]})


def kill_exec(user, container: Container, session: str, request=None) -> Job:
    kind = "container.exec"
    _authorize(request, user, kind, container)
    exec_job(user, container, session)
    return _submit(request, user, "container.exec_kill", container, {"session": session})


def exec_job(user, container: Container, session: Any) -> Job:
    """The container.exec job that made `session` on this container (ServiceError not_found otherwise): a
    session id is reachable only through its own container, by who may exec there."""
    if not isinstance(session, str) or not session.isalnum() or len(session) > 64:
        raise ServiceError("not_found", "no such exec session", field="session")
    job = (Job.objects.filter(kind="container.exec", target_type="container", target_id=str(container.pk),
                              state=Job.State.SUCCEEDED, result__session=session).first())
    if job is None:
        raise ServiceError("not_found", "no such exec session", field="session")
    return job


def console_check(user, container: Container, request=None) -> None:
    """Whether `user` may (still) hold a console on `container`: ServiceError otherwise."""
    _authorize(request, user, "container.exec", container)


def top(user, container: Container, request=None) -> Job:
    kind = "container.top"
    _authorize(request, user, kind, container)
    _running(user, request, kind, container)
    return _submit(request, user, kind, container, {})


def list_files(user, container: Container, path: Any, request=None) -> Job:
    kind = "container.files"
    _authorize(request, user, kind, container)
    try:
        params = {"path": _path(path or "/")}
    except ServiceError as exc:
        raise _refuse(request, user, kind, container, exc) from None
    _running(user, request, kind, container)
    return _submit(request, user, kind, container, params)


def archive_get(user, container: Container, path: Any, request=None) -> Job:
    kind = "container.archive_get"
    _authorize(request, user, kind, container)
    try:
        params = {"path": _path(path)}
    except ServiceError as exc:
        raise _refuse(request, user, kind, container, exc) from None
    _running(user, request, kind, container)
    return _submit(request, user, kind, container, params, {"path": params["path"]})


def archive_put(user, container: Container, path: Any, upload: Any, request=None) -> Job:
    """Extract an uploaded tar into directory `path` of the running container."""
    kind = "container.archive_put"
    try:
        _authorize(request, user, kind, container)
        try:
            params = {"path": _path(path)}
        except ServiceError as exc:
            raise _refuse(request, user, kind, container, exc) from None
        _running(user, request, kind, container)
        staged = _stage_upload(upload)
    except ServiceError:
        _discard_staged(upload)
        raise
    try:
        _check_upload(staged)
        with open(staged, "rb") as f:
            head = f.read(4)
        if head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd":
            raise ServiceError("invalid", "the archive must be a plain (uncompressed) tar", field="file")
    except ServiceError as exc:
        discard_upload(staged)
        raise _refuse(request, user, kind, container, exc) from None
    # The host fetches the staged file over HTTP (containers/transfer.py): it shares no disk with us.
    params.update(transfer.upload_params(staged))
    try:
        with transaction.atomic():
            job = _submit(request, user, kind, container, params, {"path": params["path"]})
            transfer.register_upload(container.host, job, staged)  # the row owns the file now
    except BaseException:
        discard_upload(staged)
        raise
    transfer_files.release_path(staged)
    return job


def stats(user, container: Container, *, seconds: Any = None, request=None) -> dict[str, Any]:
    """The latest sample and the history of the last `seconds` (default an hour; up to a day, per minute)."""
    import redis
    from django.conf import settings

    from workers.engine.containers import stats_history

    _authorize(request, user, "container.stats", container)
    span = _int(seconds, "seconds", low=10, high=86400, default=3600)
    out = {"container": container.pk, "state": container.state, "sample": None, "history": [], "available": True}
    r = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    try:
        out.update(sample=stats_history.latest(r, container.engine_id),
                   history=stats_history.history(r, container.engine_id, span))
    except redis.RedisError:
        out["available"] = False  # no figures now; the page says so instead of failing
    finally:
        r.close()
    return out


def wait_finished(job: Job, timeout: float | None = None) -> Job | None:
    """Wait until the host has run `job` (a quick read or copy), at most `timeout` seconds (default: the logs
    endpoint's BERTH_API_LOGS_WAIT; 0 when the host is offline). None if it is still queued or running then (the
    caller answers 202 with the Job); ServiceError with the job's own error if it failed."""
    from django.conf import settings

    if timeout is None:
        timeout = float(settings.BERTH_API_LOGS_WAIT) if job.host.online else 0.0
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        job.refresh_from_db()
        if job.state in Job.FINISHED_STATES:
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    if job.state != Job.State.SUCCEEDED:
        code = job.error_code if job.error_code in ("not_found", "invalid", "conflict") else "job_failed"
        raise ServiceError(code, job.error or f"job #{job.pk} {job.state}", field=job.error_field or None,
                           status={"not_found": 404, "invalid": 400, "conflict": 409}.get(code, 502))
    return job


def host_stats(user, host) -> dict[str, Any]:
    """The latest sample of every running container of `host` that `user` may see (stats need the viewer role,
    which seeing a container already means), for an overview sortable by CPU and memory."""
    import redis
    from django.conf import settings

    from workers.engine.containers import stats_history

    from .. import permissions

    rows = list(permissions.visible_containers(user).filter(host=host, state=Container.State.RUNNING)
                .order_by("name").values("pk", "name", "engine_id"))
    out: dict[str, Any] = {"host": host.pk, "available": True, "containers": []}
    r = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    try:
        for row in rows:
            out["containers"].append({"id": row["pk"], "name": row["name"],
                                      "sample": stats_history.latest(r, row["engine_id"]) if row["engine_id"]
                                      else None})
    except redis.RedisError:
        out.update(available=False, containers=[{"id": row["pk"], "name": row["name"], "sample": None}
                                                for row in rows])
    finally:
        r.close()
    return out


def send_input(session: str, data: bytes, eof: bool = False) -> None:
    """Bytes (and/or the end of input) for a session, through its relay's input stream (the caller has
    checked, with exec_job, that the session is the user's to reach)."""
    import redis
    from django.conf import settings

    from workers.engine.monitor.exec_relay import in_key

    r = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    try:
        if data:
            r.xadd(in_key(session), {"k": "input", "d": data}, maxlen=1000, approximate=True)
        if eof:
            r.xadd(in_key(session), {"k": "eof"}, maxlen=1000, approximate=True)
    finally:
        r.close()
