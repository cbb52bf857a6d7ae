"""Image services: import and load (from uploads), save, remove, tag, share."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from django.db import transaction

from .. import audit, namespaces, permissions, transfer, transfer_files
from .. import limits as team_limits
from ..models import Container, Host, Image, Job, Team
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
from .uploads import _check_upload, _discard_staged, _stage_upload, discard_upload

IMAGE_ACTIONS = ("save", "remove", "tag")
SAVE_FORMATS = ("docker-archive", "oci-archive")


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


def _refuse_image_archive(path: Path) -> None:
    """A docker save / OCI archive given to Import is refused at the file field, pointing to Load."""
    from workers.engine.images.errors import NotARootfs
    from workers.engine.images.sniff import refuse_image_archive

    try:
        refuse_image_archive(path)
    except NotARootfs as exc:
        raise ServiceError("image_archive", str(exc), field="file") from None


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
        if kind == "image.import":
            _refuse_image_archive(path)
        params = {**transfer.upload_params(path), "team_id": team_row.pk if team_row else None, "shared": shared,
                  # the host stops the job once the upload expands past this (a decompression bomb)
                  "max_expanded": team_limits.for_team(team_row).max_expanded_upload, **extra}
        with transaction.atomic():
            job = _submit(request, user, kind, host, ("image", ""), params, key,
                          audit_target=("image", "", extra.get("ref", "")))
            transfer.register_upload(host, job, path)  # the row owns the file (and lets the worker fetch it)
        transfer_files.release_path(path)
        transfer.sweep_quietly()
        return job
    except BaseException as exc:
        if path is not None:
            discard_upload(path)
        else:
            _discard_staged(upload)
        if isinstance(exc, ServiceError):
            _refuse(request, user, kind, ("image", "", extra.get("ref", "")), exc)
        raise


def import_image(user, *, host: Host | int | str, upload: Any, ref: str, team: Team | int | None = None,
                 shared: bool = False, message: str = "", request=None,
                 idempotency_key: str | None = None, filename: str = "") -> Job:
    """`docker import`: a root filesystem tarball (upload or staged path) becomes image `ref` on `host`.
    `filename` is the browser's name of a file the caller staged itself."""
    try:
        name, tag = _image_ref(ref, "ref")
    except ServiceError as exc:
        _discard_staged(upload)
        raise _refuse(request, user, "image.import", ("image", "", str(ref)[:100]), exc) from None
    if not isinstance(message, str):
        message = ""
    filename = _browser_name(upload, filename)
    return _import_like("image.import", user, host=host, upload=upload, team=team, shared=shared,
                        request=request, idempotency_key=idempotency_key,
                        extra={"ref": f"{name}:{tag}", "message": message[:500],
                               **({"filename": filename} if filename else {})})


def _browser_name(upload: Any, filename: str) -> str:
    """The browser's file name (a staged path's own name is the server's, never shown)."""
    if isinstance(upload, (str, PathLike)):
        return Path(str(filename or "")).name[:200]
    return Path(str(getattr(upload, "name", "") or "")).name[:200]


def load_images(user, *, host: Host | int | str, upload: Any, team: Team | int | None = None,
                shared: bool = False, request=None, idempotency_key: str | None = None, filename: str = "") -> Job:
    """`docker load`: a docker-archive or oci-archive with tagged images. `filename` (the dashboard's file,
    for the image page's origin) is kept on the job only when the caller names it."""
    filename = _browser_name(upload, filename) if filename else ""
    return _import_like("image.load", user, host=host, upload=upload, team=team, shared=shared,
                        request=request, idempotency_key=idempotency_key,
                        extra={"filename": filename} if filename else {})


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
