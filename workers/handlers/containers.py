"""Container jobs: create, start/stop/kill/restart/pause/unpause, remove, export, commit, logs.

The web side made the Container row before submitting; these handlers make the host match it and then
write back what the host says (reporter.apply_status, the same mapping the state reporter uses).
Every handler is idempotent: a job re-run after a worker died finds the host possibly already changed
and accepts that (create adopts an existing container of the same id, stop of a stopped one is done).
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

from django.conf import settings

from containers.models import Container, Image
from workers import transfer
from workers.engine.images import ImageError, RefTaken
from workers.handlers import common, handler, reporter
from workers.handlers.networks import ensure_networks

log = logging.getLogger(__name__)

RESULT_KEYS = ("id", "name", "state", "pid", "exit_code", "oom_killed", "started_at", "finished_at",
               "restart_policy", "restart_count", "status_message")


def _job_error(message: str, cause: BaseException | None = None):
    """A JobError with `message`, keeping the engine error's code and field (the failed job stores them)."""
    from workers.tasks import JobError

    return JobError(message, code=getattr(cause, "code", None), field=getattr(cause, "field", None))


def _errors():
    from workers.engine.containers import errors

    return errors


def status_result(row: Container, info: dict[str, Any]) -> dict[str, Any]:
    """The job result of a state change: the engine's status fields plus the row's id."""
    out = {k: info.get(k) for k in RESULT_KEYS}
    out["name"] = row.name  # users know the container by its own name, not the host's scoped one
    out["engine_id"] = out.pop("id")
    out["container_id"] = row.pk
    return out


def create_kwargs(params: dict[str, Any], row: Container) -> dict[str, Any]:
    """ContainerManager.create arguments from container.create params: the spec (its fields among the params;
    the rest is the job's own: name, start, volumes …), the host's scoped name and the row's id."""
    from workers.engine.containers.spec import ContainerSpec

    # A confined requester's bind sources must lie under THIS host's roots (its own setting, not the web's).
    roots = list(getattr(settings, "BERTH_BIND_MOUNT_ROOTS", []) or []) if "bind_roots" in params else None
    return {"spec": ContainerSpec.from_json(params, strict=False), "name": row.engine_name, "id": row.engine_id,
            "bind_roots": roots}


def _discard_row(row: Container) -> None:
    """A container that could not be made leaves nothing: no row, and a "removed" event says so."""
    pk = row.pk
    Container.objects.filter(pk=pk).delete()
    row.pk = pk
    row.state = "removed"
    common.publish_container(row)


def _make_sized_volumes(params: dict[str, Any]) -> None:
    """Volumes this container asked for that have a size and may not exist yet (their volume.create job
    may run after this one): made here with their size, else the mount would make them without it."""
    from workers.engine.containers import volumes

    for v in params.get("volumes") or []:
        if v.get("size") and v.get("engine_id"):
            volumes.create(common.state_root(), v.get("name") or v["engine_id"][:12], id=v["engine_id"],
                           size=int(v["size"]))


@handler("container.create")
def create(job, report) -> dict[str, Any]:
    row = common.target_container(job)
    params = job.params
    mgr = common.container_manager()
    errors = _errors()
    image_ref = row.image_ref or params.get("image") or (row.image.ref if row.image else "")
    try:
        info = mgr.inspect(row.engine_id)  # redelivered job: the host already has it
        report(50, "container already on the host: adopting it")
    except errors.NoSuchContainer:
        report(10, f"creating from {image_ref}")
        try:
            _make_sized_volumes(params)
            ensure_networks(params)  # its networks' network.create jobs may run after this one
            # The row's image (the service resolved it in the user's name spaces) by its scoped engine ref.
            info = mgr.create(row.image.engine_ref if row.image else image_ref, **create_kwargs(params, row))
        except Exception as exc:
            # Nothing half-made may stay: the engine cleans after itself, this makes sure for our id.
            with contextlib.suppress(Exception):
                mgr.remove(row.engine_id, force=True)
            _discard_row(row)
            if isinstance(exc, (errors.ContainerError, ImageError)):
                raise _job_error(str(exc), exc) from None
            raise
    _link_image(row, info, image_ref)
    reporter.save_status(row, info)
    if params.get("start") and info.get("state") == "created":
        report(70, "starting")
        try:
            info = mgr.start(row.engine_id)
        except errors.ContainerError as exc:
            info = _inspect_quietly(mgr, row) or info
            reporter.save_status(row, info, message=f"start failed: {exc}")
            raise _job_error(f"created, but could not start: {exc}", exc) from None
        reporter.save_status(row, info)
    return {"container_id": row.pk, "engine_id": row.engine_id, "state": info.get("state")}


def _link_image(row: Container, info: dict[str, Any], image_ref: str) -> None:
    fields = {}
    if image_ref and row.image_ref != image_ref:
        fields["image_ref"] = image_ref
    if row.image_id is None and image_ref:
        with contextlib.suppress(ImageError):
            name, tag = common.split_ref(image_ref)
            image = Image.objects.filter(host=row.host, namespace__in=(row.namespace, ""), name=name,
                                         tag=tag).order_by("-namespace").first()
            if image is not None:
                fields["image"] = image
    if fields:
        for key, value in fields.items():
            setattr(row, key, value)
        row.save(update_fields=list(fields))


def _inspect_quietly(mgr, row: Container) -> dict[str, Any] | None:
    try:
        return mgr.inspect(row.engine_id)
    except Exception:
        return None


def _gone(row: Container) -> Exception:
    """The engine does not know the row's container: the row says so from now on."""
    message = "the host no longer has this container"
    reporter.mark_dead(row, message)
    return _job_error(f"container {row.name}: {message} (marked dead)")


def _action(job, report, verb: str, call, done_states: tuple[str, ...]) -> dict[str, Any]:
    """Run one state change; if the container is already where the change would bring it (a re-run
    after a crash, or two clicks), that is success."""
    row = common.target_container(job)
    mgr = common.container_manager()
    errors = _errors()
    try:
        before = mgr.inspect(row.engine_id)
        if before.get("state") in done_states:
            reporter.save_status(row, before)
            return status_result(row, before)
        report(20, f"{verb} {row.name}")
        info = call(mgr, row.engine_id)
    except errors.NoSuchContainer:
        raise _gone(row) from None
    except errors.ContainerError as exc:
        info = _inspect_quietly(mgr, row)
        if info is not None:
            reporter.save_status(row, info)
        raise _job_error(str(exc), exc) from None
    if not isinstance(info, dict) or "state" not in info:
        info = mgr.inspect(row.engine_id)
    reporter.save_status(row, info)
    return status_result(row, info)


def _timeout(job) -> int:
    value = job.params.get("timeout")
    if value in (None, ""):
        return 10
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise _job_error(f"timeout must be a whole number of seconds, not {value!r}") from None
    if seconds < 0:
        raise _job_error("timeout must not be negative")
    return seconds


@handler("container.start")
def start(job, report) -> dict[str, Any]:
    return _action(job, report, "starting", lambda m, ref: m.start(ref), ("running",))


@handler("container.stop")
def stop(job, report) -> dict[str, Any]:
    timeout = _timeout(job)
    return _action(job, report, "stopping", lambda m, ref: m.stop(ref, timeout=timeout),
                   ("created", "exited", "dead"))


@handler("container.kill")
def kill(job, report) -> dict[str, Any]:
    sig = job.params.get("signal") or "SIGKILL"
    if isinstance(sig, str) and sig.isascii() and sig.isdigit():
        sig = int(sig)
    return _action(job, report, f"sending {sig} to", lambda m, ref: m.kill(ref, signal=sig), ())


@handler("container.restart")
def restart(job, report) -> dict[str, Any]:
    timeout = _timeout(job)
    return _action(job, report, "restarting", lambda m, ref: m.restart(ref, timeout=timeout), ())


@handler("container.pause")
def pause(job, report) -> dict[str, Any]:
    return _action(job, report, "pausing", lambda m, ref: m.pause(ref), ("paused",))


@handler("container.unpause")
def unpause(job, report) -> dict[str, Any]:
    return _action(job, report, "resuming", lambda m, ref: m.unpause(ref), ("running",))


@handler("container.remove")
def remove(job, report) -> dict[str, Any]:
    if common.gone_after_earlier_attempt(job, Container):
        # The attempt that died removed it (the row goes last): done, as the user asked.
        return {"container_id": int(job.target_id), "removed": True}
    row = common.target_container(job)
    mgr = common.container_manager()
    errors = _errors()
    report(20, f"removing {row.name}")
    try:
        mgr.remove(row.engine_id, force=bool(job.params.get("force")))
    except errors.NoSuchContainer:
        pass  # already gone from the host (or a re-run): the row goes too
    except errors.ContainerError as exc:
        info = _inspect_quietly(mgr, row)
        if info is not None and row.state == Container.State.REMOVING:  # marked by the web side: undo
            Container.objects.filter(pk=row.pk).update(state=info.get("state") or row.state)
            row.state = info.get("state") or row.state
        raise _job_error(str(exc), exc) from None
    pk = row.pk
    _discard_row(row)
    return {"container_id": pk, "engine_id": row.engine_id, "removed": True}


@handler("container.export")
def export(job, report) -> dict[str, Any]:
    """`docker export`: the container's filesystem as a tar, written to a nameless local file and pushed to
    the control plane (workers/transfer.py), which serves the download."""
    row = common.target_container(job)
    mgr = common.container_manager()
    errors = _errors()
    estimate = row.image.size if row.image_id and row.image and row.image.size else None
    report(2, f"exporting {row.name}")
    with transfer.local_file() as out:
        try:
            mgr.export(row.engine_id, out, progress=common.byte_progress(report, 2, 90, "written", total=estimate))
        except errors.NoSuchContainer:
            raise _gone(row) from None
        except (errors.ContainerError, ImageError) as exc:
            raise _job_error(str(exc), exc) from None
        report(91, "sending the file to the control plane")
        return transfer.push_download(job, out, f"{common.safe_filename(row.name)}.tar", common.TAR_TYPE)


@handler("container.commit")
def commit(job, report) -> dict[str, Any]:
    """`docker commit`: the container's changes become image `ref` on this host, owned by who asked."""
    row = common.target_container(job)
    params = job.params
    mgr = common.container_manager()
    errors = _errors()
    try:
        ref = ":".join(common.split_ref(params.get("ref") or ""))
    except ImageError as exc:
        raise _job_error(str(exc), exc) from None
    team = common.job_team(job)
    owner = common.job_owner(job)
    namespace = common.job_namespace(job, team)
    shared = bool(params.get("shared"))
    earlier = common.earlier_attempt_image(job, namespace, ref, owner=owner, team=team, shared=shared)
    if earlier is not None:  # a re-run after the worker died: the commit was made
        return {"image_id": earlier.pk, "ref": earlier.ref, "digest": earlier.digest}
    engine_ref = common.new_engine_ref(job.host, namespace, ref)  # an existing name is refused, not replaced
    report(10, f"committing {row.name} to {ref}")
    try:
        mgr.commit(row.engine_id, engine_ref, author=str(params.get("author") or ""),
                   message=str(params.get("message") or ""), changes=list(params.get("changes") or []),
                   replace=False)
        image = common.image_store().resolve(engine_ref)
    except RefTaken:
        raise _job_error(common.taken_message(job.host, namespace, ref)) from None
    except errors.NoSuchContainer:
        raise _gone(row) from None
    except (errors.ContainerError, ImageError) as exc:
        raise _job_error(str(exc), exc) from None
    report(90, f"committed {row.name}: recording {ref}")
    image_row = common.sync_image_row(job.host, ref, image, owner=owner, team=team, shared=shared,
                                      namespace=namespace)
    return {"image_id": image_row.pk, "ref": image_row.ref, "digest": image_row.digest}


def _number(params: dict[str, Any], key: str, kind):
    value = params.get(key)
    if value in (None, ""):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise _job_error(f"{key} must be a number, not {value!r}") from None
    if number < 0:
        raise _job_error(f"{key} must not be negative")
    return number


@handler("container.logs")
def logs(job, report) -> dict[str, Any]:
    """The container's whole log (or its tail/since) as plain text, written to a nameless local file and
    pushed to the control plane (workers/transfer.py), which serves the download."""
    row = common.target_container(job)
    params = job.params
    mgr = common.container_manager()
    errors = _errors()
    tail = _number(params, "tail", int)
    since = _number(params, "since", float)
    stamps = bool(params.get("timestamps"))
    report(5, f"reading the log of {row.name}")
    lines = 0
    with transfer.local_file() as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", write_through=False)
        try:
            at_line_start = True
            for rec in mgr.logs(row.engine_id, tail=tail, since=since, timestamps=False, follow=False,
                                stdout=params.get("stdout", True) is not False,
                                stderr=params.get("stderr", True) is not False):
                text = rec.get("log", "")
                if stamps and at_line_start:
                    out.write(f"{rec.get('time', '')} ")
                out.write(text)
                at_line_start = text.endswith("\n")  # a partial record continues the same line
                lines += at_line_start
            out.flush()
        except errors.NoSuchContainer:
            raise _gone(row) from None
        except errors.ContainerError as exc:
            raise _job_error(str(exc), exc) from None
        report(90, "sending the log to the control plane")
        result = transfer.push_download(job, raw, f"{common.safe_filename(row.name)}.log", common.TEXT_TYPE)
        out.detach()
    result["lines"] = lines
    return result
