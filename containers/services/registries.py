"""Registries (issue 15): saved credentials (a user's own, or a team's), pull, push and build jobs.

A credential is usable by its owner (a personal one) or by the operators and admins of its team; anyone else
gets 404 for it, as for any object they cannot see. Jobs carry the credential's id, never its secret: the host's
handler reads and decrypts the row, and checks again that the job's requester may use it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from .. import audit, namespaces, permissions, registry_secrets, transfer, transfer_files
from ..models import Host, Image, Job, RegistryCredential, Team
from .common import (
    ServiceError,
    _as_host,
    _as_team,
    _authorize,
    _bool,
    _existing,
    _image_ref,
    _refuse,
    _submit,
    scoped_key,
)
from .images import _check_image_name_free
from .uploads import _check_upload, _discard_staged, _stage_upload, discard_upload

MAX_SECRET = 4096
MAX_DOCKERFILE = 256 << 10


def _signed_in(request, user, action: str) -> None:
    if user is None or not user.is_authenticated:
        raise _refuse(request, user, action, None, ServiceError("not_authenticated", "sign in first", status=401))


def _registry_ref(text: Any, field: str):
    from workers.engine.images import registry_ref
    from workers.engine.images.errors import InvalidReference

    if not isinstance(text, str) or not text.strip():
        raise ServiceError("invalid", "an image reference is required, e.g. nginx:1.25 or ghcr.io/org/app:1",
                           field=field)
    try:
        return registry_ref.parse(text.strip(), field=field)
    except InvalidReference as exc:
        raise ServiceError("invalid", str(exc), field=field) from None


def _domain(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ServiceError("invalid", "the registry's host name is required (docker.io, ghcr.io, host:port)",
                           field="registry")
    clean = text.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if clean in ("index.docker.io", "registry-1.docker.io", "index.docker.io/v1"):
        clean = "docker.io"
    if "/" in clean:
        raise ServiceError("invalid", "give the registry's host name only, e.g. ghcr.io or registry.local:5000",
                           field="registry")
    return _registry_ref(f"{clean}/x", "registry").domain if clean != "docker.io" else clean


# --- credentials --------------------------------------------------------------------------------------

def visible_credentials(user) -> QuerySet[RegistryCredential]:
    """A user's own credentials and those of the teams where they are operator or admin (never others',
    not even for a superuser: secrets belong to their owners)."""
    if user is None or not user.is_authenticated:
        return RegistryCredential.objects.none()
    teams = permissions.teams_with_role(user, permissions.OPERATOR)
    return RegistryCredential.objects.filter(Q(owner=user, team__isnull=True) | Q(team_id__in=teams)) \
        .select_related("team")


def get_credential(user, pk: Any, field: str = "credential") -> RegistryCredential:
    try:
        row = visible_credentials(user).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        row = None
    if row is None:
        raise ServiceError("not_found", "no such registry credential", field=field, status=404)
    return row


def save_credential(user, *, registry: Any, username: Any, password: Any, team: Team | int | None = None,
                    insecure: Any = False, request=None) -> RegistryCredential:
    """`docker login`: save (or replace) the user's or the team's credential for `registry`. A team's needs
    the team's admin role. The password is encrypted before it is stored and is never given back."""
    action = "registry.save"
    try:
        _signed_in(request, user, action)
        domain = _domain(registry)
        if not isinstance(username, str) or not username.strip() or len(username) > 255:
            raise ServiceError("invalid", "a username of 1 to 255 characters is required", field="username")
        if not isinstance(password, str) or not password or len(password) > MAX_SECRET:
            raise ServiceError("invalid", f"a password or token of 1 to {MAX_SECRET} characters is required",
                               field="password")
        team_row = _as_team(user, team, least=permissions.ADMIN)
        insecure = _bool(insecure, "insecure")
    except ServiceError as exc:
        raise _refuse(request, user, action, ("registry_credential", "", str(registry)[:100]), exc) from None
    with transaction.atomic():
        lookup = {"team": team_row} if team_row else {"owner": user, "team__isnull": True}
        row = RegistryCredential.objects.select_for_update().filter(registry=domain, **lookup).first()
        row = row or RegistryCredential(registry=domain, owner=user, team=team_row)
        row.username, row.secret, row.insecure = username.strip(), registry_secrets.encrypt(password), insecure
        row.save()
    audit.record(request, user, action, ("registry_credential", row.pk, str(row)), "ok",
                 {"registry": domain, "team": team_row.pk if team_row else None}, team=team_row)
    return row


def delete_credential(user, pk: Any, request=None) -> None:
    action = "registry.delete"
    try:
        _signed_in(request, user, action)
        row = get_credential(user, pk)
        if row.team_id and not user.is_superuser and permissions.role_in(user, row.team_id) != permissions.ADMIN:
            raise ServiceError("forbidden", "removing a team's credential needs the team's admin role")
    except ServiceError as exc:
        raise _refuse(request, user, action, ("registry_credential", str(pk)[:20], ""), exc) from None
    audit.record(request, user, action, ("registry_credential", row.pk, str(row)), "ok", {}, team=row.team)
    row.delete()


def _pick_credential(user, domain: str, team: Team | None, explicit: Any) -> RegistryCredential | None:
    """The credential a job uses: the one given (it must be usable and for this registry), else the user's
    own for the registry, else the team's."""
    if explicit not in (None, ""):
        row = get_credential(user, explicit)
        if row.registry != domain:
            raise ServiceError("invalid", f"that credential is for {row.registry}, not {domain}", field="credential")
        if row.team_id and (team is None or row.team_id != team.pk):
            raise ServiceError("invalid", "a team's credential is used for that team's images only: choose the team",
                               field="credential")
        return row
    mine = RegistryCredential.objects.filter(owner=user, team__isnull=True, registry=domain).first()
    if team is None:
        return mine
    if permissions.role_in(user, team.pk) in (permissions.OPERATOR, permissions.ADMIN):  # not a superuser's
        return RegistryCredential.objects.filter(team=team, registry=domain).first() or mine
    return mine


def _local_name(ref) -> str:
    """The name a pulled image gets here: Docker's familiar name, with a registry port written `host-port`
    (a name space cannot hold `host:port/…`)."""
    name = ref.familiar
    first, slash, rest = name.partition("/")
    if slash and ":" in first:
        name = first.replace(":", "-") + "/" + rest
    return f"{name}:{ref.tag or 'latest'}"


# --- pull / push / build -------------------------------------------------------------------------------

def pull_image(user, *, host: Host | int | str, ref: Any, name: Any = None, team: Team | int | None = None,
               platform: Any = None, credential: Any = None, insecure: Any = False, request=None,
               idempotency_key: str | None = None) -> Job:
    """`docker pull`: queue a pull of `ref` on `host`, named `name` (default: its familiar name) in the
    user's or the team's name space."""
    kind = "image.pull"
    try:
        _signed_in(request, user, kind)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind)
        if earlier is not None:
            return earlier
        parsed = _registry_ref(ref, "ref")
        local_name, local_tag = _image_ref(name if name not in (None, "") else _local_name(parsed), "name")
        host_row = _as_host(host)
        team_row = _as_team(user, team)
        if platform not in (None, ""):
            from workers.engine.images.registry_pull import parse_platform

            try:
                parse_platform(str(platform))
            except Exception as exc:
                raise ServiceError("invalid", str(exc), field="platform") from None
        _check_image_name_free(host_row, namespaces.for_image(user, team_row.pk if team_row else None), local_name,
                               local_tag)
        cred = _pick_credential(user, parsed.domain, team_row, credential)
        params = {"ref": str(parsed), "local": f"{local_name}:{local_tag}", "platform": platform or None,
                  "team_id": team_row.pk if team_row else None, "credential_id": cred.pk if cred else None,
                  "insecure": _bool(insecure, "insecure") or bool(cred and cred.insecure)}
    except ServiceError as exc:
        raise _refuse(request, user, kind, ("image", "", str(ref)[:100]), exc) from None
    with transaction.atomic():
        return _submit(request, user, kind, host_row, ("image", ""), params, key,
                       audit_target=("image", "", params["local"]))


def push_image(user, image: Image, *, destination: Any = None, credential: Any = None, insecure: Any = False,
               request=None, idempotency_key: str | None = None) -> Job:
    """`docker push`: queue a push of `image` to `destination` (a registry reference with a tag)."""
    kind = "image.push"
    _authorize(request, user, kind, image)
    try:
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind, "image", str(image.pk))
        if earlier is not None:
            return earlier
        dest = _registry_ref(destination if destination not in (None, "") else image.ref, "destination")
        if dest.digest:
            raise ServiceError("invalid", "push to a tag, not a digest", field="destination")
        cred = _pick_credential(user, dest.domain, image.team, credential)
        params = {"destination": str(dest), "credential_id": cred.pk if cred else None,
                  "insecure": _bool(insecure, "insecure") or bool(cred and cred.insecure)}
    except ServiceError as exc:
        raise _refuse(request, user, kind, image, exc) from None
    with transaction.atomic():
        return _submit(request, user, kind, image.host, image, params, key)


def build_image(user, *, host: Host | int | str, ref: Any, upload: Any = None, dockerfile: Any = None,
                team: Team | int | None = None, build_args: Any = None, no_cache: Any = False, target: Any = None,
                request=None, idempotency_key: str | None = None) -> Job:
    """`docker build`: a context (an uploaded tar, optional) and a Containerfile (pasted text, or the
    context's own) become image `ref` on `host`."""
    kind = "image.build"
    path = None
    try:
        _signed_in(request, user, kind)
        key = scoped_key(user, idempotency_key)
        earlier = _existing(user, key, kind)
        if earlier is not None:
            _discard_staged(upload)
            return earlier
        name, tag = _image_ref(ref, "ref")
        host_row = _as_host(host)
        team_row = _as_team(user, team)
        if dockerfile not in (None, "") and (not isinstance(dockerfile, str) or len(dockerfile) > MAX_DOCKERFILE):
            raise ServiceError("invalid", f"the Containerfile must be text of at most {MAX_DOCKERFILE} bytes",
                               field="dockerfile")
        if upload is None and dockerfile in (None, ""):
            raise ServiceError("invalid", "give a Containerfile or a context tar holding one", field="dockerfile")
        args = build_args or {}
        if not isinstance(args, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
            raise ServiceError("invalid", "build_args is an object of name -> string value", field="build_args")
        if target not in (None, "") and not isinstance(target, str):
            raise ServiceError("invalid", "target is a stage name", field="target")
        _check_image_name_free(host_row, namespaces.for_image(user, team_row.pk if team_row else None), name, tag)
        if dockerfile not in (None, ""):
            from workers.engine.images.build.dockerfile import parse
            from workers.engine.images.build.errors import BuildError

            try:
                parse(dockerfile)
            except BuildError as exc:
                raise ServiceError("invalid", str(exc), field="dockerfile") from None
        if upload is not None:
            path = _stage_upload(upload)
            _check_upload(path)
        params = {"ref": f"{name}:{tag}", "dockerfile": dockerfile or None,
                  "team_id": team_row.pk if team_row else None, "build_args": args,
                  "no_cache": _bool(no_cache, "no_cache"), "target": target or None,
                  **(transfer.upload_params(path) if path else {})}
        with transaction.atomic():
            job = _submit(request, user, kind, host_row, ("image", ""), params, key,
                          audit_target=("image", "", params["ref"]))
            if path is not None:  # the row owns the staged context; the host fetches it over HTTP
                transfer.register_upload(host_row, job, path)
        if path is not None:
            transfer_files.release_path(path)
        return job
    except BaseException as exc:
        if path is not None:
            discard_upload(path)
        else:
            _discard_staged(upload)
        if isinstance(exc, ServiceError):
            raise _refuse(request, user, kind, ("image", "", str(ref)[:100]), exc) from None
        raise
