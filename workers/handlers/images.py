"""Image jobs: import, load, save, remove, tag, seed. The host's image store is the truth; the Image rows
(one per host, name and tag) follow it after each job."""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any

from django.contrib.auth import get_user_model

from containers import namespaces
from containers.models import Image, Team
from workers import transfer
from workers.engine.images import CorruptArchive, ImageError, ImageNotFound, RefTaken
from workers.engine.images.base import BUSYBOX_REF, DEBIAN_REF, debian_ref, ensure_base_images, is_base_ref
from workers.engine.images.build.leftovers import TAG_PREFIX as BUILD_TAG_PREFIX
from workers.engine.images.debian import default_cache_dir
from workers.handlers import common, handler, on_worker_start

SAVE_FORMATS = ("docker-archive", "oci-archive")
log = logging.getLogger(__name__)


def _job_error(message: str):
    from workers.tasks import JobError

    return JobError(message)


def _readable(exc: Exception, upload, what: str) -> str:
    """The store names the file by its name (here the anonymous local copy's fd); users know it as "the
    upload"."""
    text = str(exc)
    prefix = f"{getattr(upload, 'name', '')}: "
    if text.startswith(prefix):
        text = text[len(prefix):]
    return f"{what}: {text}"


def _max_expanded(job) -> int | None:
    """The cap on the upload's decompressed size the web side put in the job (the team's), or none."""
    value = job.params.get("max_expanded")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@handler("image.import")
def import_image(job, report) -> dict[str, Any]:
    """`docker import`: an uploaded root filesystem tarball (fetched from the control plane, see
    workers/transfer.py) becomes a one-layer image `ref` in the name space of who asked (or of
    params.team_id); an existing `ref` there is refused, never replaced."""
    params = job.params
    ref = params.get("ref") or ""
    try:
        name, tag = common.split_ref(ref)
        team = common.job_team(job)
    except ImageError as exc:
        transfer.consume_upload(job)
        raise _job_error(str(exc)) from None
    except Exception:
        transfer.consume_upload(job)
        raise
    namespace = common.job_namespace(job, team)
    # A re-run after the worker died between import and finish: the upload is consumed, the image is there.
    row = Image.objects.filter(host=job.host, namespace=namespace, name=name, tag=tag).first()
    if row is not None and not transfer.Transfer.objects.filter(job=job).exists() \
            and common.image_store().exists(row.engine_ref):
        return {"image_id": row.pk, "ref": row.ref, "digest": row.digest, "size": row.size}
    try:
        engine_ref = common.new_engine_ref(job.host, namespace, f"{name}:{tag}")
    except Exception:
        transfer.consume_upload(job)
        raise
    report(1, "receiving the upload")
    with transfer.fetched_upload(job) as upload:
        report(1, "importing")
        try:
            store = common.image_store()
            progress = common.byte_progress(report, 1, 95, "imported", total=_size(upload))
            # The history names the file as the user knew it, never the server's staging path.
            shown = os.path.basename(str(params.get("filename") or "")) or "an upload"
            image = store.import_tarball(upload, engine_ref, message=str(params.get("message") or ""),
                                         progress=progress, max_expanded=_max_expanded(job), replace=False,
                                         history=f"berth import {shown}")
        except RefTaken:
            raise _job_error(common.taken_message(job.host, namespace, f"{name}:{tag}")) from None
        except CorruptArchive as exc:
            raise _job_error(_readable(exc, upload, "the upload is not a tar archive (plain, gzip or zstd)")) from None
        except ImageError as exc:
            raise _job_error(_readable(exc, upload, "import refused")) from None
        finally:
            transfer.consume_upload(job)
    row = common.sync_image_row(job.host, f"{name}:{tag}", image, owner=common.job_owner(job), team=team,
                                shared=bool(params.get("shared")), namespace=namespace)
    return {"image_id": row.pk, "ref": row.ref, "digest": row.digest, "size": row.size}


def _size(f) -> int:
    return os.fstat(f.fileno()).st_size


@handler("image.load")
def load_images(job, report) -> dict[str, Any]:
    """`docker load`: a docker-archive or oci-archive with one or more tagged images. Its tags go to the
    loader's name space (or params.team_id's): an archive tagged `busybox:latest` never touches the
    system's base image, and a tag the name space has already refuses the whole load before anything
    is written."""
    try:
        team = common.job_team(job)
    except Exception:
        transfer.consume_upload(job)
        raise
    namespace = common.job_namespace(job, team)
    written: dict[str, str] = {}  # engine ref -> user-facing name:tag

    def rename(tag: str) -> str:
        from workers.tasks import JobError

        try:
            engine_ref = common.new_engine_ref(job.host, namespace, tag)
        except JobError as exc:
            raise ImageError(str(exc)) from None
        written[engine_ref] = tag
        return engine_ref

    report(1, "receiving the upload")
    with transfer.fetched_upload(job) as upload:
        report(1, "loading")
        try:
            store = common.image_store()
            progress = common.byte_progress(report, 1, 95, "loaded", total=_size(upload))
            images = store.load(upload, progress=progress, max_expanded=_max_expanded(job), rename=rename,
                                replace=False)
        except RefTaken as exc:
            raise _job_error(common.taken_message(job.host, namespace, common.user_ref(exc.ref))) from None
        except ImageError as exc:
            raise _job_error(_readable(exc, upload, "the archive was refused")) from None
        finally:
            transfer.consume_upload(job)
    out = []
    for image in images:
        for engine_ref in image.tags:
            if engine_ref not in written:
                continue  # another name of the same image (another name space's): not this job's
            row = common.sync_image_row(job.host, written[engine_ref], image, owner=common.job_owner(job),
                                        team=team, shared=bool(job.params.get("shared")), namespace=namespace)
            out.append({"image_id": row.pk, "ref": row.ref})
    if not out:
        ids = ", ".join(i.id[7:19] for i in images)
        report(99, f"loaded untagged image(s) {ids}: tag them to use them")
    return {"images": out}


@handler("image.save")
def save_image(job, report) -> dict[str, Any]:
    """`docker save`: a docker-archive or oci-archive, written to a nameless local file and pushed to the
    control plane (workers/transfer.py), which serves the download."""
    row = common.target_image(job)
    fmt = job.params.get("format") or "docker-archive"
    if fmt not in SAVE_FORMATS:
        raise _job_error(f"unknown format {fmt!r}: use one of {', '.join(SAVE_FORMATS)}")
    store = common.image_store()
    with transfer.local_file() as out:
        try:
            image = store.resolve(row.engine_ref)
            report(1, f"saving {row.ref} as {fmt}")
            store.save([row.engine_ref], out, format=fmt, names=[row.ref],
                       progress=common.byte_progress(report, 1, 95, "written", total=image.size))
        except ImageError as exc:
            raise _job_error(str(exc)) from None
        report(96, "sending the file to the control plane")
        return transfer.push_download(job, out, f"{common.safe_filename(row.name + '_' + row.tag)}.tar",
                                      common.TAR_TYPE)


@handler("image.remove")
def remove_image(job, report) -> dict[str, Any]:
    """Untag or remove the image in the store, then delete its row (a store without it is fine: gone)."""
    if common.gone_after_earlier_attempt(job, Image):  # the attempt that died removed it (the row goes last)
        return {"image_id": int(job.target_id), "untagged": [], "deleted": None}
    row = common.target_image(job)
    force = bool(job.params.get("force"))
    try:
        result = common.image_store().remove(row.engine_ref, force=force)
        result["untagged"] = [common.user_ref(t) for t in result.get("untagged") or []]
    except ImageNotFound:
        result = {"untagged": [], "deleted": None, "note": f"{row.ref} was not in the store"}
    except ImageError as exc:
        raise _job_error(str(exc)) from None
    pk = row.pk
    common.publish_image(row, "removed")
    row.delete()
    result["image_id"] = pk
    return result


@handler("image.tag")
def tag_image(job, report) -> dict[str, Any]:
    """A second name for the image in the image's own name space; an existing name there is refused."""
    row = common.target_image(job)
    target = job.params.get("ref") or ""
    try:
        ref = ":".join(common.split_ref(target))
    except ImageError as exc:
        raise _job_error(str(exc)) from None
    owner = common.job_owner(job) or row.owner
    earlier = common.earlier_attempt_image(job, row.namespace, ref, owner=owner, team=row.team, shared=row.shared)
    if earlier is not None:  # a re-run after the worker died: the tag was made
        return {"image_id": earlier.pk, "ref": earlier.ref, "digest": earlier.digest}
    engine_ref = common.new_engine_ref(job.host, row.namespace, ref)
    try:
        image = common.image_store().tag(row.engine_ref, engine_ref, replace=False)
    except RefTaken:
        raise _job_error(common.taken_message(job.host, row.namespace, ref)) from None
    except ImageError as exc:
        raise _job_error(str(exc)) from None
    report(90, f"tagged: recording {ref}")
    new = common.sync_image_row(job.host, ref, image, owner=owner, team=row.team, shared=row.shared,
                                namespace=row.namespace)
    return {"image_id": new.pk, "ref": new.ref, "digest": new.digest}


@handler("image.seed")
def seed_images(job, report) -> dict[str, Any]:
    """The host's base images (busybox; debian when asked and debootstrap works, with the extra Debian
    packages of `include`) and their rows, which belong to nobody and are shared so every user sees them.
    The host's own $BERTH_BASE_CACHE, if set, keeps Debian builds (the web side names no host path)."""
    from workers.tasks import JobError

    store = common.image_store()
    report(5, "making base images")
    include = job.params.get("include") or None
    try:
        made = ensure_base_images(store, debian=bool(job.params.get("debian")), include=include,
                                  cache_dir=default_cache_dir())
    except ImageError as exc:
        raise JobError(f"could not make the base images: {exc}", code=exc.code, field=exc.field) from None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise _job_error(f"could not make the base images: {exc}") from None
    out = []
    for ref in dict.fromkeys((BUSYBOX_REF, DEBIAN_REF, debian_ref(include))):
        if store.exists(ref):
            row = common.sync_image_row(job.host, ref, store.resolve(ref), owner=None, team=None, shared=True)
            out.append({"image_id": row.pk, "ref": row.ref})
    return {"made": made, "images": out}


@on_worker_start
def sync_host_images(host) -> list[int]:
    """At worker start, give every tagged image in the host's store a row (made with the host's CLI, or
    while no worker ran); rows already there follow their tag and keep their ownership. A scoped ref
    (`u7/app:1`, `t3/app:1`) belongs to that user or team; only the system's own base refs are shared.
    Rows are never deleted here: a store that lost an image shows it when a job touches it."""
    store = common.image_store()
    adopt_scoped_refs(host, store)
    User = get_user_model()
    pks = []
    for image in store.list():
        for engine_ref in image.tags:
            if engine_ref.startswith(BUILD_TAG_PREFIX):
                continue  # a build's intermediate image (its own, or a killed build's until swept): nobody's to see
            namespace, name, tag = namespaces.split_engine_ref(engine_ref)
            existing = Image.objects.filter(host=host, namespace=namespace, name=name, tag=tag).exists()
            user_id, team_id = namespaces.owner_ids(namespace)
            owner = User.objects.filter(pk=user_id).first() if user_id is not None else None
            team = Team.objects.filter(pk=team_id).first() if team_id is not None else None
            row = common.sync_image_row(host, f"{name}:{tag}", image, owner=owner, team=team,
                                        shared=namespace == namespaces.SYSTEM and is_base_ref(engine_ref),
                                        keep_ownership=existing, namespace=namespace)
            pks.append(row.pk)
    return pks


def adopt_scoped_refs(host, store) -> list[int]:
    """Rows of a personal or team name space whose image the store still keeps under its unscoped name
    (made before name spaces existed) get their scoped ref: tagged anew, the old name untagged. Only
    when the unscoped name points at the row's own digest and is no system row's."""
    moved = []
    for row in Image.objects.filter(host=host).exclude(namespace=namespaces.SYSTEM):
        plain = f"{row.name}:{row.tag}"
        if store.exists(row.engine_ref) or not store.exists(plain):
            continue
        if Image.objects.filter(host=host, namespace=namespaces.SYSTEM, name=row.name, tag=row.tag).exists():
            continue
        try:
            if store.resolve(plain).digest != row.digest:
                continue
            store.tag(plain, row.engine_ref, replace=False)
            store.remove(plain)
        except ImageError:
            log.warning("could not move %s of image #%s to %s", plain, row.pk, row.engine_ref)
            continue
        moved.append(row.pk)
    return moved
