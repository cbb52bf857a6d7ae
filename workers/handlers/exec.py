"""The way in, host side: exec sessions (relayed to Redis for consoles), top, files in and out.

`container.exec` starts a session in the monitor and a detached relay process (workers/exec_relay.py) that
outlives this worker; the job's result names the session. The others are quick reads or copies whose result
(or export file) the web side returns to the caller."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

from workers import transfer
from workers.handlers import common, handler

from .containers import _errors, _job_error


def _mgr():
    return common.container_manager()


@handler("container.exec")
def exec_session(job, report) -> dict[str, Any]:
    row = common.target_container(job)
    p = job.params
    errors = _errors()
    try:
        info = _mgr().exec_start(row.engine_id, list(p["command"]), user=p.get("user") or None,
                                 env=list(p.get("env") or []), workdir=p.get("workdir") or None,
                                 tty=bool(p.get("tty")), interactive=bool(p.get("interactive")),
                                 rows=p.get("rows"), cols=p.get("cols"))
    except errors.ContainerError as exc:
        raise _job_error(str(exc), exc) from None
    start_relay(job.pk, info["id"])
    return {"session": info["id"], "pid": info.get("pid"), "status": info["status"],
            "exit_code": info.get("exit_code"), "started_at": info.get("started_at"), "tty": info["tty"]}


def start_relay(job_id: int, sid: str) -> None:
    """The relay as a daemon of its own: killing this worker leaves it (and the session) running."""
    from workers.engine.monitor.exec_relay import spawn_detached

    log_dir = common.state_root() / "monitor" / "exec"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(settings.BASE_DIR)), os.environ.get("PYTHONPATH")])),
           "BERTH_STATE_ROOT": str(common.state_root()), "REDIS_URL": settings.REDIS_URL}
    spawn_detached([sys.executable, "-m", "workers.exec_relay", str(job_id), sid], env=env,
                   log_path=str(log_dir / "relay.log"))


@handler("container.exec_kill")
def exec_kill(job, report) -> dict[str, Any]:
    row = common.target_container(job)
    errors = _errors()
    try:
        info = _mgr().exec_kill(row.engine_id, job.params["session"], int(job.params.get("signal") or 9))
    except errors.ContainerError as exc:
        raise _job_error(str(exc), exc) from None
    return {"session": info["id"], "status": info["status"]}


@handler("container.top")
def top(job, report) -> dict[str, Any]:
    row = common.target_container(job)
    errors = _errors()
    try:
        return _mgr().top(row.engine_id)
    except errors.ContainerError as exc:
        raise _job_error(str(exc), exc) from None


@handler("container.files")
def files(job, report) -> dict[str, Any]:
    row = common.target_container(job)
    errors = _errors()
    path = job.params.get("path") or "/"
    try:
        return {"path": path, "entries": _mgr().list_dir(row.engine_id, path)}
    except errors.ContainerError as exc:
        raise _job_error(str(exc), exc) from None


@handler("container.archive_get")
def archive_get(job, report) -> dict[str, Any]:
    """`docker cp` out: the path as a tar, written to a nameless local file and pushed to the control plane."""
    row = common.target_container(job)
    errors = _errors()
    path = job.params["path"]
    name = os.path.basename(path.rstrip("/")) or "root"
    with transfer.local_file() as out:
        try:
            _mgr().get_archive(row.engine_id, path, out)
        except errors.ContainerError as exc:
            raise _job_error(str(exc), exc) from None
        out.seek(0)
        result = transfer.push_download(job, out, f"{common.safe_filename(name)}.tar", common.TAR_TYPE)
    return {**result, "source": path}


@handler("container.archive_put")
def archive_put(job, report) -> dict[str, Any]:
    """`docker cp` in: the uploaded tar, fetched from the control plane, extracted into the container's path."""
    row = common.target_container(job)
    errors = _errors()
    try:
        with transfer.fetched_upload(job) as src:
            try:
                n = _mgr().put_archive(row.engine_id, job.params["path"], src)
            except errors.ContainerError as exc:
                raise _job_error(str(exc), exc) from None
    finally:
        transfer.consume_upload(job)
    return {"path": job.params["path"], "entries": n}
