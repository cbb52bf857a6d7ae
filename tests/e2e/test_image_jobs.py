"""Image jobs end to end: real redis-server, real Celery workers with their own state roots, the real
image store. Each test's worker keeps its store under its own temporary state root."""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from containers import jobs
from containers.events import GROUP
from containers.models import Image, Job
from tests.transfers import download_of, staged_files, submit_upload, tar_bytes
from workers.engine.images import ImageStore

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def workers(berth_worker):
    """berth_worker whose workers are told to stop all at once at the end (warm shutdowns take seconds)."""
    handles = []

    def start(name: str):
        handles.append(berth_worker(name))
        return handles[-1]

    yield start
    for handle in handles:
        handle.discard()




def collect_events(run, until) -> list[dict]:
    """Run `run()` (which submits jobs) while listening to the events group; stop when `until(event)`."""

    async def scenario() -> list[dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        try:
            await asyncio.to_thread(run)
            seen = []
            while True:
                message = await asyncio.wait_for(layer.receive(channel), timeout=120)
                event = message["event"]
                seen.append(event)
                if until(event):
                    return seen
        finally:
            await layer.group_discard(GROUP, channel)

    return asyncio.run(scenario())


def test_seed_import_with_progress_save_load_tag_remove(workers, wait_job, tmp_path):
    user = get_user_model().objects.create_user("imp", password="pw-imp-12345")
    a = workers("img-a")
    b = workers("img-b")

    seed = wait_job(jobs.submit("image.seed", a.host, params={}))
    assert seed.state == Job.State.SUCCEEDED, seed.error
    base = Image.objects.get(host=a.host, name="busybox", tag="latest")
    assert base.owner is None and base.team is None and base.shared
    assert base.digest.startswith("sha256:") and base.layers and base.config["rootfs"]["diff_ids"] == base.layers
    # Seeding again changes nothing and makes no second row.
    assert wait_job(jobs.submit("image.seed", a.host, params={})).state == Job.State.SUCCEEDED
    assert Image.objects.filter(host=a.host, name="busybox", tag="latest").count() == 1
    # Nobody but a superuser moves a system tag: importing as busybox:latest makes the user's own image
    # of that name (in the user's name space, `u<id>/busybox:latest` on the host) and the base stays.
    job, hijack = submit_upload("image.import", a.host, tar_bytes({"etc/motd": b"mine now\n"}), requested_by=user,
                                ref="busybox:latest")
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    own = Image.objects.get(pk=job.result["image_id"])
    assert (own.ref, own.owner_id, own.shared) == ("busybox:latest", user.pk, False) and own.pk != base.pk
    assert not hijack.exists()
    assert ImageStore(a.state_root).resolve("busybox:latest").digest == base.digest
    assert ImageStore(a.state_root).resolve(f"u{user.pk}/busybox:latest").digest == own.digest
    assert Image.objects.get(pk=base.pk).digest == base.digest
    ns = f"u{user.pk}/"  # the user's images' refs in the host's store

    # An 8 MiB upload: the job reports byte progress while it imports.
    payload = os.urandom(8 << 20)
    data = tar_bytes({"data/blob.bin": payload, "etc/greeting": b"hello from the upload\n"})
    box: dict = {}

    def submit():
        box["job"], box["upload"] = submit_upload("image.import", a.host, data, requested_by=user,
                                                  ref="uploaded:v1", team_id=None, shared=False,
                                                  message="from a test")

    seen = collect_events(submit, lambda e: e["type"] == "job" and e["id"] == box["job"].pk
                          and e["state"] in ("succeeded", "failed"))
    job = wait_job(box["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    mine = [e for e in seen if e["type"] == "job" and e["id"] == job.pk]
    assert any(0 < e["progress"] < 100 and "MiB" in e["message"] for e in mine), mine
    row = Image.objects.get(pk=job.result["image_id"])
    assert (row.name, row.tag, row.owner_id, row.host_id) == ("uploaded", "v1", user.pk, a.host.pk)
    assert row.size > len(payload) and row.digest == job.result["digest"]
    assert row.config["history"][-1]["comment"] == "from a test"
    assert any(e["type"] == "image" and e["id"] == row.pk for e in seen)
    assert not box["upload"].exists(), "the worker consumed the upload: the web side deleted it"
    assert staged_files() == [], staged_files()
    store_a = ImageStore(a.state_root)
    assert store_a.resolve(ns + "uploaded:v1").digest == row.digest
    assert len(row.layers) == 1 and (store_a.layer_dir(row.layers[0]) / "etc/greeting").read_bytes() == \
        b"hello from the upload\n"

    # save as docker-archive on A, load it on B: same digest there.
    save = wait_job(jobs.submit("image.save", a.host, target=row, params={"format": "docker-archive"}))
    assert save.state == Job.State.SUCCEEDED, save.error
    saved = download_of(save)  # pushed by the worker to this process's staging dir
    assert "path" not in save.result and not (a.state_root / "exports").exists()
    assert saved.stat().st_size == save.result["size"] and save.result["filename"] == "uploaded_v1.tar"
    assert save.result["content_type"] == "application/x-tar"
    with tarfile.open(saved) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["uploaded:v1"]
    load, copy = submit_upload("image.load", b.host, saved.read_bytes(), requested_by=user)
    load = wait_job(load)
    assert load.state == Job.State.SUCCEEDED, load.error
    [loaded] = load.result["images"]
    on_b = Image.objects.get(pk=loaded["image_id"])
    assert (on_b.host_id, on_b.ref, on_b.layers) == (b.host.pk, "uploaded:v1", row.layers)
    assert ImageStore(b.state_root).resolve(ns + "uploaded:v1").id == store_a.resolve(ns + "uploaded:v1").id
    assert not copy.exists()

    # tag makes a second row for the same image; remove of one tag leaves the other image intact.
    tag = wait_job(jobs.submit("image.tag", a.host, target=row, requested_by=user, params={"ref": "uploaded:v2"}))
    assert tag.state == Job.State.SUCCEEDED, tag.error
    v2 = Image.objects.get(pk=tag.result["image_id"])
    assert (v2.name, v2.tag, v2.digest) == ("uploaded", "v2", row.digest)
    rm = wait_job(jobs.submit("image.remove", a.host, target=row, params={"force": False}))
    assert rm.state == Job.State.SUCCEEDED, rm.error
    assert not Image.objects.filter(pk=row.pk).exists()
    assert not store_a.exists(ns + "uploaded:v1") and store_a.resolve(ns + "uploaded:v2").digest == row.digest
    rm2 = wait_job(jobs.submit("image.remove", a.host, target=v2, params={}))
    assert rm2.state == Job.State.SUCCEEDED, rm2.error
    assert not store_a.exists(ns + "uploaded:v2")
    assert not store_a.layer_dir(row.layers[0]).exists(), "the last tag removed frees the layer"


def test_import_of_a_non_tarball_fails_readably_and_leaves_nothing(workers, wait_job, tmp_path):
    a = workers("img-bad")
    store = ImageStore(a.state_root)
    blobs_before = sorted(p.name for p in store.blobs.iterdir())
    job, upload = submit_upload("image.import", a.host, b"this is a text file, not a tarball\n" * 40,
                                ref="notatar:latest")
    job = wait_job(job)
    assert job.state == Job.State.FAILED
    assert "is not a tar archive" in job.error, job.error
    assert "/proc/" not in job.error and "Traceback" not in job.error
    assert not Image.objects.filter(name="notatar").exists()
    assert not upload.exists(), "a refused upload is deleted too"
    assert sorted(p.name for p in store.blobs.iterdir()) == blobs_before
    assert list(store.tmp.iterdir()) == [] and list(store.layers.iterdir()) == []
    assert not store.exists("notatar:latest")

    # A bad reference is refused before anything is read.
    job, upload2 = submit_upload("image.import", a.host, tar_bytes({"a": b"x"}), ref="Bad Name!")
    job = wait_job(job)
    assert job.state == Job.State.FAILED and "invalid" in job.error, job.error
    assert not upload2.exists() and Image.objects.count() == 0

    # Only uploads the control plane staged are read: a path in the params is no way to name a host's file.
    job = wait_job(jobs.submit("image.import", a.host, params={"path": "/etc/passwd", "ref": "leak:latest"}))
    assert job.state == Job.State.FAILED and "upload it again" in job.error, job.error
    assert job.error_field == "file"
    assert Path("/etc/passwd").exists() and not store.exists("leak:latest")

    # Saving an image the host does not have says so.
    ghost = Image.objects.create(host=a.host, name="ghost", tag="latest")
    job = wait_job(jobs.submit("image.save", a.host, target=ghost, params={"format": "oci-archive"}))
    assert job.state == Job.State.FAILED and "ghost:latest" in job.error, job.error
    assert staged_files() == [] and not (a.state_root / "exports").exists()
    job = wait_job(jobs.submit("image.save", a.host, target=ghost, params={"format": "zip"}))
    assert job.state == Job.State.FAILED and "unknown format 'zip'" in job.error
