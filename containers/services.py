"""The one path from "a user asks" to "a job is queued", shared by the API and the dashboard (iface §5).

Each service checks permissions (containers/permissions.py), validates, records an audit event
(containers/audit.py) — refusals too — and submits the job (containers/jobs.py). Refusals raise
ServiceError with a stable code, a readable message, the offending field and an HTTP status; nothing
is changed and no job is made when one is raised.
"""

from __future__ import annotations

import os
import random
import re
import signal as signal_module
import uuid
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import FileResponse

from . import audit, bounds, events, namespaces, permissions
from . import jobs as job_dispatch
from . import limits as team_limits
from .models import Container, Host, Image, Job, Team

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
# Idempotency keys: printable ASCII without spaces, as the API schema documents them.
IDEMPOTENCY_KEY_CHARS = "[!-~]"
IDEMPOTENCY_KEY_MAX = 150
IDEMPOTENCY_KEY = re.compile(f"{IDEMPOTENCY_KEY_CHARS}{{1,{IDEMPOTENCY_KEY_MAX}}}")
CHUNK = 1 << 20
CONTAINER_ACTIONS = ("start", "stop", "kill", "restart", "pause", "unpause", "remove", "export", "commit", "logs")
IMAGE_ACTIONS = ("save", "remove", "tag")
SAVE_FORMATS = ("docker-archive", "oci-archive")
# States from which an action makes sense; anything else is a readable "conflict".
ACTION_STATES: dict[str, tuple[str, ...]] = {
    "start": ("created", "exited"),
    "stop": ("running", "paused"),
    "kill": ("running", "paused"),
    "restart": ("created", "running", "paused", "exited"),
    "pause": ("running",),
    "unpause": ("paused",),
    "export": ("created", "running", "paused", "exited"),
    "commit": ("created", "running", "paused", "exited"),
    "logs": ("created", "running", "paused", "exited", "dead"),
    "remove": ("created", "running", "paused", "exited", "dead"),
}
DOWNLOAD_ACTIONS = {"container.export": "container.export", "image.save": "image.save",
                    "container.logs": "container.logs"}
STATUS = {"invalid": 400, "not_a_tarball": 400, "no_such_image": 404, "name_taken": 409, "conflict": 409,
          "forbidden": 403, "not_found": 404, "not_authenticated": 401, "idempotency_key_reused": 409,
          "gone": 410}


class ServiceError(Exception):
    """A refused request: `.code` (stable), `.message` (readable), `.field` (or None), `.status` (HTTP)."""

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status or STATUS.get(code, 400)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            out["fields"] = {self.field: [self.message]}
        return out


# --- shared steps -------------------------------------------------------------------------------------

def _refuse(request, user, action: str, target: Any, error: ServiceError) -> ServiceError:
    result = "denied" if error.status in (401, 403, 404) else "invalid"
    audit.record(request, user, action, target, result, {"code": error.code, "message": error.message,
                                                         **({"field": error.field} if error.field else {})},
                 status_code=error.status)
    return error


def _authorize(request, user, action: str, obj: Any, audit_action: str | None = None) -> None:
    """permissions.check as ServiceErrors, with the refusal in the audit log."""
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, audit_action or action, obj,
                      ServiceError("not_authenticated", "sign in first", status=401))
    try:
        permissions.check(user, action, obj)
    except permissions.NotVisible:
        what = type(obj).__name__.lower() if obj is not None else "object"
        raise _refuse(request, user, audit_action or action, obj,
                      ServiceError("not_found", f"no such {what}")) from None
    except permissions.Forbidden as exc:
        raise _refuse(request, user, audit_action or action, obj, ServiceError("forbidden", str(exc))) from None


def scoped_key(user, key: str | None) -> str | None:
    """Idempotency keys are per user: two users using the same key never share a job."""
    if not key:
        return None
    key = str(key).strip()
    if not key:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ServiceError("invalid", "Idempotency-Key must be 1 to 150 printable ASCII characters without spaces",
                           field="idempotency_key")
    return f"u{user.pk}:{key}"


def _existing(user, key: str | None, kind: str, target_type: str = "", target_id: str = "") -> Job | None:
    """The job an earlier request with the same key made; refuse reusing a key for something else."""
    if not key:
        return None
    job = Job.objects.filter(idempotency_key=key).first()
    if job is None:
        return None
    if job.kind != kind or (target_id and (job.target_type, job.target_id) != (target_type, target_id)):
        raise ServiceError("idempotency_key_reused",
                           f"this Idempotency-Key was already used for {job.kind} (job #{job.pk})",
                           field="idempotency_key")
    return job


def _submit(request, user, kind: str, host: Host, target: Any, params: dict[str, Any], key: str | None,
            audit_target: Any = None) -> Job:
    job = job_dispatch.submit(kind, host, params=params, requested_by=user, target=target, idempotency_key=key)
    audit.record(request, user, kind, audit_target if audit_target is not None else target, "ok",
                 {"job": job.pk}, status_code=202)
    return job


def _as_host(host: Host | int | str) -> Host:
    if isinstance(host, Host):
        return host
    found = None
    if isinstance(host, int) or (isinstance(host, str) and host.isascii() and host.isdigit()):
        found = Host.objects.filter(pk=bounds.as_id(host, Host) or 0).first()
    if found is None and isinstance(host, str):
        found = Host.objects.filter(name=host).first()
    if found is None:
        raise ServiceError("no_such_host", f"no such host {host!r}", field="host", status=404)
    return found


def _as_team(user, team: Team | int | None, field: str = "team", least: str = permissions.OPERATOR) -> Team | None:
    """The team a new object goes to; the user needs at least `least` there (superusers anything)."""
    if team in (None, ""):
        return None
    if not isinstance(team, Team):
        try:
            team = Team.objects.filter(pk=int(team)).first()
        except (TypeError, ValueError):
            team = None
    if team is None or not (user.is_superuser or permissions.role_in(user, team.pk)):
        raise ServiceError("no_such_team", "no such team", field=field, status=404)
    role = permissions.role_in(user, team.pk)
    if not user.is_superuser and permissions.ROLE_RANK[role] < permissions.ROLE_RANK[least]:
        raise ServiceError("forbidden", f"you need the {least} role in team {team.name} for this", field=field)
    return team


def _image_ref(ref: Any, field: str = "ref") -> tuple[str, str]:
    """("name", "tag") of a `name[:tag]` reference (tag defaults to latest)."""
    from workers.engine.images import refs

    if not isinstance(ref, str) or not ref.strip():
        raise ServiceError("invalid", "an image reference name[:tag] is required", field=field)
    try:
        name, _, tag = refs.tag_of(ref.strip()).rpartition(":")
    except Exception as exc:  # InvalidReference: readable already
        raise ServiceError("invalid", str(exc), field=field) from None
    return name, tag


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ServiceError("invalid", f"{field} must be true or false", field=field)


def _int(value: Any, field: str, *, low: int | None = None, high: int | None = None,
         default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ServiceError("invalid", f"{field} must be a whole number", field=field)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ServiceError("invalid", f"{field} must be a whole number, not {str(value)[:30]!r}", field=field) from None
    if (low is not None and n < low) or (high is not None and n > high):
        bounds = f"from {low}" + (f" to {high}" if high is not None else " up")
        raise ServiceError("invalid", f"{field} must be {bounds}, not {n}", field=field)
    return n


# --- containers ---------------------------------------------------------------------------------------

_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nimble", "quiet", "sharp",
               "swift", "tidy", "vivid", "witty", "zesty", "bold", "crisp", "gentle", "proud", "sunny")
_NOUNS = ("otter", "heron", "lynx", "puffin", "marten", "walrus", "falcon", "badger", "gecko", "ibis",
          "koala", "lemur", "narwhal", "osprey", "quokka", "raven", "stoat", "tapir", "wombat", "yak")


def generate_name(host: Host, namespace: str = namespaces.SYSTEM) -> str:
    """A free Docker-style name in `namespace` on `host`: adjective_animal, with a number if needed."""
    rng = random.SystemRandom()
    for attempt in range(50):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}"
        if attempt >= 10:
            name += f"{rng.randrange(1000)}"
        if not Container.objects.filter(host=host, namespace=namespace, name=name).exists():
            return name
    return f"container_{uuid.uuid4().hex[:12]}"


def _name_order(user, namespace: str):
    """Sort key over images of one name:tag: the new object's own name space first, then the user's
    personal one, then the system's, then anything else visible (another team's shared image)."""
    order = [namespace, namespaces.of_user(user.pk), namespaces.SYSTEM]
    return lambda img: (order.index(img.namespace) if img.namespace in order else len(order), img.pk)


def _resolve_image(user, host: Host, image: Image | str, namespace: str = namespaces.SYSTEM) -> Image:
    if isinstance(image, Image):
        if image.host_id != host.pk:
            raise ServiceError("no_such_image", f"image {image.ref} is not on host {host.name}", field="image")
        found = image
    else:
        try:
            name, tag = _image_ref(image, "image")
        except ServiceError as exc:  # a name that cannot exist names no image
            raise ServiceError("no_such_image", exc.message, field="image") from None
        candidates = list(permissions.visible_images(user).filter(host=host, name=name, tag=tag))
        found = min(candidates, key=_name_order(user, namespace)) if candidates else None
        if found is None:
            raise ServiceError("no_such_image", f"no image {name}:{tag} on host {host.name}", field="image")
    if not permissions.can(user, "view", found):
        raise ServiceError("no_such_image", f"no image {found.ref} on host {host.name}", field="image")
    if not permissions.can(user, "image.use", found):
        raise ServiceError("forbidden", f"you may not run containers from {found.ref}", field="image")
    return found


def _check_mounts(user, mounts: list[str]) -> None:
    """Bind mounts are for superusers, or under the allowed roots (compared as text: the host checks them
    again on its own disk, without following links)."""
    roots = [os.path.normpath(r) for r in getattr(settings, "BERTH_BIND_MOUNT_ROOTS", []) or []]
    for spec in mounts:
        source = spec.split(":", 1)[0]
        if source.startswith("/") and not user.is_superuser:
            resolved = os.path.normpath(source)
            if not any(resolved == r or resolved.startswith(r.rstrip("/") + "/") for r in roots):
                allowed = ", ".join(roots) or "none"
                raise ServiceError("forbidden", f"bind mount of {source} refused: only superusers may bind-mount "
                                                f"host paths (allowed roots: {allowed})", field="mounts")


def _container_params(user, host: Host, values: dict[str, Any], team: Team | None = None) -> dict[str, Any]:
    """The container spec (workers/engine/containers/spec.py) checked, with the team's limits and the host's
    facts: ServiceError names the field. Limits not given get the team's (or the system's) defaults; one above
    its maximum is refused. Returns the job params: the spec's JSON (and bind_roots for the host)."""
    from workers.engine.containers.errors import InvalidConfig
    from workers.engine.containers.spec import ContainerSpec

    try:
        spec = ContainerSpec.from_json(values)
        if spec.cpus is not None and host.cpus and spec.cpus > host.cpus:  # the host's fact, not our CPUs
            raise InvalidConfig("cpus", f"cpus must be more than 0 and at most {host.cpus} (the CPUs of host "
                                        f"{host.name})")
        limited = team_limits.container_values(team_limits.for_team(team), memory=spec.memory, cpus=spec.cpus,
                                               pids_limit=spec.pids_limit, disk=spec.disk)
        spec = spec.replace(**limited)
    except InvalidConfig as exc:
        raise ServiceError(exc.code, str(exc), field=exc.field) from None
    except team_limits.LimitError as exc:
        raise ServiceError("invalid", exc.message, field=exc.field) from None
    _check_mounts(user, spec.mounts)
    return {**spec.to_json(), **_bind_roots(user, spec.mounts)}


def _bind_roots(user, mounts: list[str]) -> dict[str, Any]:
    """The host checks a non-superuser's bind sources again, on its own disk and without following links."""
    if user.is_superuser or not any(m.startswith("/") for m in mounts):
        return {}
    return {"bind_roots": [str(r) for r in getattr(settings, "BERTH_BIND_MOUNT_ROOTS", []) or []]}


def create_container(user, *, host: Host | int | str, image: Image | str, name: str = "", start: bool = True,
                     team: Team | int | None = None, spec: dict[str, Any] | None = None, user_spec: str | None = None,
                     request=None, idempotency_key: str | None = None, **fields: Any) -> tuple[Container, Job]:
    """Make the Container row (state "created") and queue container.create (and its start).

    What the container is asked to be is `spec` (container spec JSON) and/or its fields as keyword
    arguments; `user_spec` is the spec's `user` (the first argument is who asks)."""
    """Make the Container row (state "created") and queue container.create (and its start)."""
    from . import services_volumes

    action = "container.create"
    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, action)
        if earlier is not None:
            container = Container.objects.filter(pk=earlier.target_id).first() if earlier.target_id else None
            return container, earlier
        host = _as_host(host)
        name = (name or "").strip()
        if name and not NAME_RE.match(name):
            raise ServiceError("invalid", f"invalid container name {name!r}: use letters, digits, '_', '.', '-' "
                                          "(starting with a letter or digit, at most 128)", field="name")
        team_row = _as_team(user, team)
        namespace = namespaces.for_container(user, team_row.pk if team_row else None)
        if len(namespaces.engine_name(namespace, name)) > 128:
            raise ServiceError("invalid", f"invalid container name {name!r}: at most "
                                          f"{127 - len(namespace)} characters", field="name")
        image_row = _resolve_image(user, host, image, namespace)
        values = {**(spec or {}), **fields, **({"user": user_spec} if user_spec is not None else {})}
        params = _container_params(user, host, values, team_row)
        start = _bool(start, "start")
        # Volume names are looked up in the creator's (or the team's) name space, never host-wide.
        planned = services_volumes.plan_mounts(user, host, team_row, params["mounts"])
        # Names are per name space (yours or your team's): another tenant's names are never revealed.
        if name and Container.objects.filter(host=host, namespace=namespace, name=name).exists():
            raise ServiceError("name_taken", f"the name {name} is already in use on host {host.name}", field="name")
        name = name or generate_name(host, namespace)
        params.update(name=name, image=image_row.ref, start=start)
        try:
            with transaction.atomic():
                volumes = services_volumes.attach_volumes(request, user, host, team_row, planned, params)
                container = Container.objects.create(
                    name=name, namespace=namespace, host=host, image=image_row, image_ref=image_row.ref,
                    owner=user, team=team_row,
                    command=params["command"] or [], config=params, state=Container.State.CREATED,
                    labels=params["labels"], restart_policy=params["restart_policy"])
                container.volumes.set(volumes)
                job = _submit(request, user, action, host, container, params, key)
        except IntegrityError:
            raise ServiceError("name_taken", f"the name {name} is already in use on host {host.name}",
                               field="name") from None
        return container, job
    except ServiceError as exc:
        _refuse(request, user, action, ("container", "", name if isinstance(name, str) else ""), exc)
        raise


def _action_params(user, container: Container, action: str, params: dict[str, Any]) -> dict[str, Any]:
    if action in ("stop", "restart"):
        return {"timeout": _int(params.get("timeout"), "timeout", low=0, high=3600, default=10)}
    if action == "kill":
        sig = params.get("signal", "SIGKILL")
        if isinstance(sig, bool):
            raise ServiceError("invalid", "signal must be a name like SIGTERM or a number", field="signal")
        if isinstance(sig, str) and sig.strip().isascii() and sig.strip().isdigit():
            if len(sig.strip()) > 3:  # no int() of a huge digit string
                raise ServiceError("invalid", f"signal {sig.strip()[:20]}… is out of range 1..64", field="signal")
            sig = int(sig.strip())
        if isinstance(sig, int):
            if not 1 <= sig <= 64:
                raise ServiceError("invalid", f"signal {sig} is out of range 1..64", field="signal")
            return {"signal": sig}
        text = str(sig or "SIGKILL").strip().upper()
        text = text if text.startswith("SIG") else "SIG" + text
        if text not in signal_module.Signals.__members__:
            raise ServiceError("invalid", f"unknown signal {str(sig)[:20]!r}", field="signal")
        return {"signal": text}
    if action == "remove":
        return {"force": _bool(params.get("force"), "force")}
    if action == "logs":
        since = params.get("since")
        if since not in (None, ""):
            try:
                since = float(since)
            except (TypeError, ValueError):
                raise ServiceError("invalid", "since must be a unix timestamp (seconds)", field="since") from None
        else:
            since = None
        return {"tail": _int(params.get("tail"), "tail", low=0), "since": since,
                "timestamps": _bool(params.get("timestamps"), "timestamps"), "stdout": True, "stderr": True}
    if action == "commit":
        name, tag = _image_ref(params.get("ref"), "ref")
        changes = params.get("changes") or []
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise ServiceError("invalid", "changes must be a list of strings like 'CMD [\"sh\"]'", field="changes")
        for field in ("author", "message"):
            if not isinstance(params.get(field) or "", str):
                raise ServiceError("invalid", f"{field} must be a string", field=field)
        team_id = params.get("team_id", container.team_id)
        if team_id is not None and team_id == container.team_id:
            team = container.team  # the image stays with the container's team
        else:
            team = _as_team(user, team_id, field="team_id")
        shared = _bool(params.get("shared"), "shared")
        if shared and not permissions.can(user, "image.share", container):
            raise ServiceError("forbidden", "sharing an image with everyone needs the admin role", field="shared")
        _check_image_name_free(container.host, namespaces.for_image(user, team.pk if team else None), name, tag)
        return {"ref": f"{name}:{tag}", "author": params.get("author") or user.get_username(),
                "message": params.get("message") or "", "changes": changes,
                "team_id": team.pk if team else None, "shared": shared}
    return {}


def container_action(user, container: Container, action: str, *, params: dict[str, Any] | None = None,
                     request=None, idempotency_key: str | None = None) -> Job:
    """Queue one of start/stop/kill/restart/pause/unpause/remove/export/commit/logs on `container`."""
    if action not in CONTAINER_ACTIONS:
        raise ServiceError("invalid", f"unknown container action {action!r}", field="action")
    kind = f"container.{action}"
    _authorize(request, user, kind, container)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "container", str(container.pk))
        if earlier is not None:
            return earlier
        params = _action_params(user, container, action, dict(params or {}))
        if container.state not in ACTION_STATES[action]:
            raise ServiceError("conflict", f"cannot {action} container {container.name}: it is {container.state}")
        if action == "remove" and container.state in ("running", "paused") and not params["force"]:
            raise ServiceError("conflict", f"container {container.name} is {container.state}: stop it first "
                                           "or remove with force")
    except ServiceError as exc:
        raise _refuse(request, user, kind, container, exc) from None
    with transaction.atomic():
        job = _submit(request, user, kind, container.host, container, params, key)
        if action == "remove":
            # Shown as "removing" until the host is done; the handler puts the real state back if it refuses.
            Container.objects.filter(pk=container.pk).update(state=Container.State.REMOVING)
            container.state = Container.State.REMOVING
            transaction.on_commit(lambda: events.publish_container(container))
        return job


# --- images -------------------------------------------------------------------------------------------

def uploads_dir() -> Path:
    path = Path(settings.BERTH_STATE_ROOT) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_upload_path() -> Path:
    return uploads_dir() / f"{uuid.uuid4().hex}.upload"


def save_upload(source: IO[bytes] | Any, dest: Path | None = None, *, limit: int | None = None) -> Path:
    """Copy an upload (Django UploadedFile or a binary file object) to the uploads dir in chunks."""
    dest = dest or new_upload_path()
    written = 0
    try:
        with open(dest, "xb") as out:
            chunks = source.chunks(CHUNK) if hasattr(source, "chunks") else iter(lambda: source.read(CHUNK), b"")
            for chunk in chunks:
                written += len(chunk)
                if limit is not None and written > limit:
                    raise ServiceError("invalid", f"the upload is larger than {limit} bytes", field="file",
                                       status=413)
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def looks_like_archive(head: bytes) -> bool:
    """tar (ustar magic or a valid v7 header checksum), gzip or zstd, from the first 512 bytes."""
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:512])


def _stage_upload(upload: Any) -> Path:
    """The upload's path in the uploads dir (copied there unless the caller staged it); ours to clean."""
    if isinstance(upload, (str, os.PathLike)):
        path = Path(upload)
        if not path.is_absolute() or not path.is_file():
            raise ServiceError("invalid", "the uploaded file is missing", field="file")
        if path.resolve().parent == uploads_dir().resolve():
            return path  # already staged by the caller (streamed request body)
        with open(path, "rb") as src:
            return save_upload(src)
    if upload is None or not (hasattr(upload, "chunks") or hasattr(upload, "read")):
        raise ServiceError("invalid", "a file is required", field="file")
    return save_upload(upload)


def _discard_staged(upload: Any) -> None:
    """Delete a caller-staged upload (a path in an uploads dir) that will not be imported."""
    if isinstance(upload, (str, os.PathLike)) and Path(upload).parent.name == "uploads":
        Path(upload).unlink(missing_ok=True)


def _check_upload(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise ServiceError("not_a_tarball", "the uploaded file is empty", field="file")
    if not looks_like_archive(head):
        raise ServiceError("not_a_tarball", "the uploaded file is not a tar archive (plain, gzip or zstd)",
                           field="file")


def _check_image_name_free(host: Host, namespace: str, name: str, tag: str) -> None:
    """A new image name must be possible in `namespace` and not taken there (never replaced: remove the
    old image first). Only the name space the image goes to is looked at, so nothing tells whether
    another tenant has that name."""
    try:
        namespaces.check_new_ref(namespace, name, tag)
    except namespaces.NameError_ as exc:
        raise ServiceError("invalid", str(exc), field="ref") from None
    if Image.objects.filter(host=host, namespace=namespace, name=name, tag=tag).exists():
        where = "the system name space" if namespace == namespaces.SYSTEM else (
            "this team's name space" if namespace.startswith("t") else "your name space")
        raise ServiceError("name_taken", f"{name}:{tag} already exists in {where} on host {host.name}: choose "
                                         "another name or tag, or remove that image first", field="ref")


def _import_like(kind: str, user, *, host, upload, team, shared, request, idempotency_key,
                 extra: dict[str, Any]) -> Job:
    path: Path | None = None
    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind)
        if earlier is not None:
            _discard_staged(upload)
            return earlier
        host = _as_host(host)
        team_row = _as_team(user, team)
        shared = _bool(shared, "shared")
        if shared and not (user.is_superuser or (team_row and permissions.role_in(user, team_row.pk) == "admin")):
            raise ServiceError("forbidden", "sharing an image with everyone needs the admin role in its team",
                               field="shared")
        if extra.get("ref"):
            name, _, tag = extra["ref"].rpartition(":")
            _check_image_name_free(host, namespaces.for_image(user, team_row.pk if team_row else None), name, tag)
        path = _stage_upload(upload)
        _check_upload(path)
        params = {"path": str(path), "team_id": team_row.pk if team_row else None, "shared": shared,
                  # the host stops the job once the upload expands past this (a decompression bomb)
                  "max_expanded": team_limits.for_team(team_row).max_expanded_upload, **extra}
        with transaction.atomic():
            return _submit(request, user, kind, host, ("image", ""), params, key,
                           audit_target=("image", "", extra.get("ref", "")))
    except BaseException as exc:
        if path is not None:
            path.unlink(missing_ok=True)
        else:
            _discard_staged(upload)
        if isinstance(exc, ServiceError):
            _refuse(request, user, kind, ("image", "", extra.get("ref", "")), exc)
        raise


def import_image(user, *, host: Host | int | str, upload: Any, ref: str, team: Team | int | None = None,
                 shared: bool = False, message: str = "", request=None,
                 idempotency_key: str | None = None) -> Job:
    """`docker import`: a root filesystem tarball (upload or staged path) becomes image `ref` on `host`."""
    try:
        name, tag = _image_ref(ref, "ref")
    except ServiceError as exc:
        _discard_staged(upload)
        raise _refuse(request, user, "image.import", ("image", "", str(ref)[:100]), exc) from None
    if not isinstance(message, str):
        message = ""
    return _import_like("image.import", user, host=host, upload=upload, team=team, shared=shared,
                        request=request, idempotency_key=idempotency_key,
                        extra={"ref": f"{name}:{tag}", "message": message[:500]})


def load_images(user, *, host: Host | int | str, upload: Any, team: Team | int | None = None,
                shared: bool = False, request=None, idempotency_key: str | None = None) -> Job:
    """`docker load`: a docker-archive or oci-archive with tagged images."""
    return _import_like("image.load", user, host=host, upload=upload, team=team, shared=shared,
                        request=request, idempotency_key=idempotency_key, extra={})


def image_action(user, image: Image, action: str, *, params: dict[str, Any] | None = None, request=None,
                 idempotency_key: str | None = None) -> Job:
    """Queue save/remove/tag of `image`."""
    if action not in IMAGE_ACTIONS:
        raise ServiceError("invalid", f"unknown image action {action!r}", field="action")
    kind = f"image.{action}"
    _authorize(request, user, kind, image)
    params = dict(params or {})
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "image", str(image.pk))
        if earlier is not None:
            return earlier
        if action == "save":
            fmt = params.get("format") or "docker-archive"
            if fmt not in SAVE_FORMATS:
                raise ServiceError("invalid", f"format must be one of {', '.join(SAVE_FORMATS)}", field="format")
            clean: dict[str, Any] = {"format": fmt}
        elif action == "remove":
            force = _bool(params.get("force"), "force")
            in_use = Container.objects.filter(image=image).exclude(state="removing").count()
            if in_use and not force:
                raise ServiceError("conflict", f"image {image.ref} is used by {in_use} container(s): remove them "
                                               "first or use force")
            clean = {"force": force}
        else:
            name, tag = _image_ref(params.get("ref"), "ref")
            _check_image_name_free(image.host, image.namespace, name, tag)  # a tag stays in its image's
            clean = {"ref": f"{name}:{tag}"}
    except ServiceError as exc:
        raise _refuse(request, user, kind, image, exc) from None
    with transaction.atomic():
        return _submit(request, user, kind, image.host, image, clean, key)


def share_image(user, image: Image, team: Team | int | None, shared: bool, request=None) -> Image:
    """Move `image` to `team` (or none) and set whether everyone may use it. DB only, no job."""
    _authorize(request, user, "image.share", image)
    try:
        team_row = _as_team(user, team, least=permissions.ADMIN)
        shared = _bool(shared, "shared")
        if shared and not user.is_superuser and not (team_row and permissions.role_in(user, team_row.pk) == "admin"):
            if not (image.owner_id == user.pk and team_row is None and image.team_id is None):
                raise ServiceError("forbidden", "sharing with everyone needs the admin role in the image's team",
                                   field="shared")
    except ServiceError as exc:
        raise _refuse(request, user, "image.share", image, exc) from None
    before = {"team_id": image.team_id, "shared": image.shared}
    image.team = team_row
    image.shared = shared
    image.save(update_fields=["team", "shared"])
    audit.record(request, user, "image.share", image, "ok",
                 {"before": before, "after": {"team_id": image.team_id, "shared": shared}}, status_code=200)
    return image


# --- team limits --------------------------------------------------------------------------------------

def set_team_limits(user, team: Team, values: dict[str, Any], *, replace: bool = False, request=None):
    """Set `team`'s container limits (superusers only); None takes the system value, 0 means none.
    With `replace`, fields not given go back to the system value."""
    from .models import TeamLimits

    try:
        if user is None or not user.is_authenticated:
            raise ServiceError("not_authenticated", "sign in first", status=401)
        if not user.is_superuser:
            raise ServiceError("forbidden", "only superusers change a team's limits")
        unknown = sorted(set(values) - set(team_limits.FIELDS))
        if unknown:
            raise ServiceError("invalid", f"unknown limit {unknown[0]!r}", field=unknown[0])
        row = TeamLimits.objects.filter(team=team).first() or TeamLimits(team=team)
        new = {f: (values.get(f) if replace else values.get(f, getattr(row, f))) for f in team_limits.FIELDS}
        for name in team_limits.FIELDS:
            if name.startswith("default_"):
                top = new.get("max_" + name[len("default_"):])
                if new[name] and top and new[name] > top:
                    raise ServiceError("invalid", f"{name} {new[name]:g} is above max_{name[8:]} {top:g}", field=name)
    except ServiceError as exc:
        raise _refuse(request, user, "team.limits", team, exc) from None
    before = {f: getattr(row, f) for f in team_limits.FIELDS}
    for name, value in new.items():
        setattr(row, name, value)
    row.save()
    audit.record(request, user, "team.limits", team, "ok", {"before": before, "after": new}, status_code=200)
    return row


# --- downloads ----------------------------------------------------------------------------------------

class StreamedFile(FileResponse):
    """A FileResponse that an ASGI server streams chunk by chunk. Django would otherwise read a
    synchronous file iterator into memory whole before sending it (the whole export)."""

    block_size = 256 * 1024

    async def __aiter__(self):
        from asgiref.sync import sync_to_async

        read = sync_to_async(self.file_to_stream.read, thread_sensitive=False)
        while True:
            chunk = await read(self.block_size)
            if not chunk:
                break
            yield chunk


def download_path(job: Job) -> Path:
    """The finished job's file, only if it lies inside its host's `<state root>/exports/`."""
    result = job.result if isinstance(job.result, dict) else {}
    raw = result.get("path")
    root = (job.host.facts or {}).get("state_root")
    if not raw or not root:
        raise ServiceError("not_found", "this job has no file to download")
    if result.get("expired"):
        raise ServiceError("gone", job.message or "the file of this job expired and was removed: run the job "
                                                  "again")
    exports = Path(root).resolve() / "exports"
    path = Path(raw).resolve()
    if exports not in path.parents or not path.is_file():
        raise ServiceError("not_found", "the file of this job is gone")
    return path


def download_response(user, job: Job, request=None) -> StreamedFile:
    """A streamed download of a finished export/save/logs job's file, with type and length."""
    action = DOWNLOAD_ACTIONS.get(job.kind)
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, "job.download", job, ServiceError("not_authenticated", "sign in first",
                                                                       status=401))
    if not permissions.can(user, "view", job):
        raise _refuse(request, user, "job.download", job, ServiceError("not_found", "no such job"))
    try:
        if action is None:
            raise ServiceError("no_download", f"{job.kind} jobs make no file to download", status=404)
        target = permissions.job_target(job)
        if target is not None:
            if not permissions.can(user, action, target):
                raise ServiceError("forbidden", f"you may not download the result of {job.kind} here", status=403)
        elif not (user.is_superuser or job.requested_by_id == user.pk):
            raise ServiceError("forbidden", "only who asked for this job may download it now", status=403)
        if job.state != Job.State.SUCCEEDED:
            raise ServiceError("conflict", f"job #{job.pk} is {job.state}: download once it succeeded")
        path = download_path(job)
    except ServiceError as exc:
        raise _refuse(request, user, "job.download", job, exc) from None
    result = job.result
    filename = str(result.get("filename") or path.name).replace("/", "_")
    response = StreamedFile(open(path, "rb"), as_attachment=True, filename=filename,
                            content_type=str(result.get("content_type") or "application/octet-stream"))
    size = path.stat().st_size
    response["Content-Length"] = str(size)
    audit.record(request, user, "job.download", job, "ok", {"size": size}, status_code=200)
    return response
