"""Registry and build jobs (issue 15): image.pull, image.push, image.build.

Credentials come from the RegistryCredential row named by params.credential_id, checked again here against
the job's requester (and decrypted only in memory): job params, results, messages and logs never hold a secret."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from django.db import connections
from django.utils import timezone

from containers import permissions
from containers.models import RegistryCredential
from workers import transfer
from workers.engine.images import ImageError, RefTaken
from workers.engine.images.compression import decompressed
from workers.engine.images.registry_auth import Credentials
from workers.handlers import common, handler, on_worker_start


def _job_error(message: str, exc: Exception | None = None):
    from workers.tasks import JobError

    return JobError(message, code=getattr(exc, "code", None), field=getattr(exc, "field", None))


def _credentials(job, team) -> Credentials | None:
    """The job's credential, if the requester may still use it (theirs, or their team's as operator+)."""
    pk = job.params.get("credential_id")
    if pk in (None, ""):
        return None
    row = RegistryCredential.objects.filter(pk=pk).first()
    user = common.job_owner(job)
    usable = row is not None and user is not None and (
        (row.team_id is None and row.owner_id == user.pk)
        or (row.team_id is not None and team is not None and row.team_id == team.pk
            and permissions.role_in(user, row.team_id) in (permissions.OPERATOR, permissions.ADMIN)))
    if not usable:
        raise _job_error("the registry credential of this job no longer exists or is not yours to use")
    from containers import registry_secrets

    try:
        secret = registry_secrets.decrypt(row.secret)
    except ValueError as exc:
        raise _job_error(str(exc)) from None
    RegistryCredential.objects.filter(pk=row.pk).update(last_used=timezone.now())
    return Credentials(row.username, secret)


class _LayerProgress:
    """Per-layer byte counts from the engine, reported as one bar (bytes of all layers) and a line."""

    def __init__(self, report, verb: str, start: int = 5, end: int = 95, min_interval: float = 0.3) -> None:
        self.report, self.verb, self.start, self.end, self.min_interval = report, verb, start, end, min_interval
        self.layers: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            if event.get("status") == "resolved":
                for layer in event.get("layers", []):
                    self.layers.setdefault(layer["id"], [0, layer["total"]])
                return
            layer = event.get("id")
            if not layer or "current" not in event:
                return
            self.layers[layer] = [event["current"], event.get("total") or event["current"]]
            done = sum(c for c, _ in self.layers.values())
            total = sum(t for _, t in self.layers.values()) or 1
            finished = sum(1 for c, t in self.layers.values() if c >= t)
            now = time.monotonic()
            if now - self.last < self.min_interval and finished < len(self.layers):
                return
            self.last = now
        pct = self.start + int((self.end - self.start) * min(done, total) / total)
        self.report(pct, f"{self.verb} {_mb(done)} of {_mb(total)} ({finished}/{len(self.layers)} layers)")
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()  # this transfer thread's own connection: closed, not leaked


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@handler("image.pull")
def pull_image(job, report) -> dict[str, Any]:
    from workers.engine.images import registry

    params = job.params
    team = common.job_team(job)
    namespace = common.job_namespace(job, team)
    local = params.get("local") or ""
    earlier = common.earlier_attempt_image(job, namespace, local, owner=common.job_owner(job), team=team)
    if earlier is not None:  # a re-run after the worker died: the pull was made
        return {"image_id": earlier.pk, "ref": earlier.ref, "digest": earlier.digest, "layers_fetched": 0,
                "layers_reused": len(earlier.layers)}
    engine_ref = common.new_engine_ref(job.host, namespace, local)
    credentials = _credentials(job, team)
    report(1, f"resolving {params.get('ref')}")
    try:
        result = registry.pull(common.image_store(), params["ref"], platform=params.get("platform") or None,
                               tag=engine_ref, credentials=credentials, insecure=bool(params.get("insecure")),
                               progress=_LayerProgress(report, "downloaded"))
    except RefTaken:
        raise _job_error(common.taken_message(job.host, namespace, local)) from None
    except ImageError as exc:
        raise _job_error(f"pull of {params.get('ref')} failed: {exc}", exc) from None
    report(97, f"pulled {params.get('ref')}: recording {local}")
    row = common.sync_image_row(job.host, local, result.image, owner=common.job_owner(job), team=team,
                                namespace=namespace)
    report(99, f"pulled {params.get('ref')} as {row.ref}")
    return {"image_id": row.pk, "ref": row.ref, "digest": result.digest, "layers_fetched": len(result.fetched),
            "layers_reused": len(result.reused)}


@handler("image.push")
def push_image(job, report) -> dict[str, Any]:
    from workers.engine.images import registry

    row = common.target_image(job)
    params = job.params
    credentials = _credentials(job, row.team)
    report(1, f"pushing {row.ref} to {params.get('destination')}")
    try:
        result = registry.push(common.image_store(), row.engine_ref, params["destination"], credentials=credentials,
                               insecure=bool(params.get("insecure")), progress=_LayerProgress(report, "sent"))
    except ImageError as exc:
        raise _job_error(f"push of {row.ref} to {params.get('destination')} failed: {exc}", exc) from None
    report(99, f"pushed {result.ref}: digest {result.digest}")
    return {"image_id": row.pk, "destination": result.ref, "digest": result.digest, "size": result.size,
            "blobs_sent": len(result.sent), "blobs_skipped": len(result.skipped)}


def _unpack_context(f, dest: Path) -> None:
    """The uploaded context tar (plain, gzip or zstd), extracted with the store's hostile-archive rules."""
    from workers.engine.images.tarsafe import DEFAULT_POLICY, extract

    dest.mkdir(parents=True)
    _, plain = decompressed(f, "the build context")
    extract(plain, str(dest), DEFAULT_POLICY, "the build context")


@handler("image.build")
def build_image(job, report) -> dict[str, Any]:
    from workers.engine.images.build import BuildError, build

    params = job.params
    work = common.state_root() / "build-contexts" / str(job.pk)
    shutil.rmtree(work, ignore_errors=True)
    lines: list[str] = []
    pending: list[str] = []
    last = [0.0]
    try:
        try:
            team = common.job_team(job)
            namespace = common.job_namespace(job, team)
            local = params.get("ref") or ""
            earlier = common.earlier_attempt_image(job, namespace, local, owner=common.job_owner(job), team=team)
            if earlier is None:
                engine_ref = common.new_engine_ref(job.host, namespace, local)
        except Exception:
            if params.get("upload"):
                transfer.consume_upload(job)  # refused for good: the control plane deletes the staged file
            raise
        if earlier is not None:  # a re-run after the worker died: the build was made
            if params.get("upload"):
                transfer.consume_upload(job)
            return {"image_id": earlier.pk, "ref": earlier.ref, "digest": earlier.digest, "steps": 0, "cached": 0,
                    "new_layers": 0, "log": []}
        context = work / "context"
        if params.get("upload"):
            # The context was staged by the web server; the host fetches it over HTTP (no shared disk).
            report(1, "receiving and unpacking the build context")
            try:
                with transfer.fetched_upload(job) as upload:
                    _unpack_context(upload, context)
            except ImageError as exc:
                raise _job_error(f"the build context was refused: {exc}", exc) from None
            finally:
                transfer.consume_upload(job)
        else:
            context.mkdir(parents=True)

        def log(line: str) -> None:
            # Lines go to the job's message (and so to the browser) in batches, at most 4 writes a second.
            lines.append(line)
            pending.append(line)
            now = time.monotonic()
            if now - last[0] >= 0.25 or line.startswith("STEP "):
                last[0] = now
                report(min(95, 5 + len(lines) // 4), "\n".join(pending)[-480:])
                pending.clear()

        try:
            result = build(common.image_store(), context, dockerfile=params.get("dockerfile") or None,
                           tags=[engine_ref], build_args=params.get("build_args") or {},
                           no_cache=bool(params.get("no_cache")), target=params.get("target") or None, log=log,
                           manager=common.container_manager())
        except BuildError as exc:
            raise _job_error(str(exc), exc) from None
        except ImageError as exc:
            raise _job_error(f"build failed: {exc}", exc) from None
        report(97, f"built: recording {local}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = common.sync_image_row(job.host, local, result.image, owner=common.job_owner(job), team=team,
                                namespace=namespace)
    report(99, f"built {row.ref}: {len(result.new_layers)} new layer(s), {result.cached} step(s) from the cache")
    return {"image_id": row.pk, "ref": row.ref, "digest": result.image.digest, "steps": result.steps,
            "cached": result.cached, "new_layers": len(result.new_layers), "log": lines[-500:]}


@on_worker_start
def sweep_dead_builds(host) -> list[str]:
    """Containers and intermediate tags of builds whose worker was killed mid-way (the next build does it too)."""
    from workers.engine.images.build import leftovers

    return leftovers.sweep(common.image_store(), common.container_manager)
