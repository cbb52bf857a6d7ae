"""A job re-run after its worker died mid-way (attempts > 1) finds the host and the rows as the dead attempt left
them: a removal whose row is gone is done; a name the dead attempt made in the store is that attempt's image, not a
taken name. A first attempt gets neither allowance. The real worker kill: tests/e2e/test_worker_killed_per_kind.py."""

from __future__ import annotations

import io
import tarfile
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from containers.models import Container, Host, Image, Job
from workers.handlers import common, containers, images
from workers.tasks import JobError


@pytest.fixture
def store(settings, tmp_path):
    from workers.engine.images import ImageStore

    settings.BERTH_STATE_ROOT = tmp_path / "root"
    return ImageStore(settings.BERTH_STATE_ROOT)


def tarball(tmp_path) -> str:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("etc/hello")
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
    return str(path)


def job(kind: str, host: Host, target, attempts: int, **params) -> Job:
    return Job.objects.create(kind=kind, host=host, target_type=type(target).__name__.lower(),
                              target_id=str(target.pk), params=params, attempts=attempts,
                              requested_by=params.pop("user", None))


def test_a_removal_rerun_whose_row_is_gone_is_done_a_first_attempt_is_not(host, published):
    row = Container.objects.create(name="c", host=host)
    image = Image.objects.create(host=host, name="app", tag="1")
    rerun_c, first_c = job("container.remove", host, row, 2), job("container.remove", host, row, 1)
    rerun_i, first_i = job("image.remove", host, image, 2), job("image.remove", host, image, 1)
    row.delete()
    image.delete()
    assert containers.remove(rerun_c, lambda *a: None) == {"container_id": int(rerun_c.target_id), "removed": True}
    assert images.remove_image(rerun_i, lambda *a: None)["image_id"] == int(rerun_i.target_id)
    with pytest.raises(JobError, match="no longer exists"):
        containers.remove(first_c, lambda *a: None)
    with pytest.raises(JobError, match="no longer exists"):
        images.remove_image(first_i, lambda *a: None)


def test_a_name_the_dead_attempt_made_is_adopted_only_by_its_rerun(host, published, store, tmp_path):
    alice, bob = get_user_model().objects.create_user("alice"), get_user_model().objects.create_user("bob")
    ns = f"u{alice.pk}"
    made = store.import_tarball(tarball(tmp_path), f"{ns}/snap:1")  # what the dead attempt put in the store
    row = Container.objects.create(name="c", host=host, owner=alice)
    first = job("container.commit", host, row, 1, ref="snap:1", user=alice)
    rerun = job("container.commit", host, row, 2, ref="snap:1", user=alice)

    assert common.earlier_attempt_image(first, ns, "snap:1", owner=alice, team=None) is None
    # It died between the store and the row: the re-run records the image (the engine is not asked again).
    result = containers.commit(rerun, lambda *a: None)
    image = Image.objects.get(host=host, namespace=ns, name="snap", tag="1")
    assert result == {"image_id": image.pk, "ref": "snap:1", "digest": made.digest}
    assert image.owner_id == alice.pk and image.digest == made.digest
    # It died after the row: the same again.
    assert containers.commit(rerun, lambda *a: None)["image_id"] == image.pk
    # The next worker's start gave the store's tag a row of nobody's (images.sync_host_images): the re-run's.
    Image.objects.filter(pk=image.pk).update(owner=None)
    assert common.earlier_attempt_image(rerun, ns, "snap:1", owner=alice, team=None).owner_id == alice.pk

    # Not the dead attempt's: a row older than the job, or someone else's.
    Image.objects.filter(pk=image.pk).update(created=rerun.created - timedelta(seconds=1))
    assert common.earlier_attempt_image(rerun, ns, "snap:1", owner=alice, team=None) is None
    Image.objects.filter(pk=image.pk).update(created=rerun.created, owner=bob)
    assert common.earlier_attempt_image(rerun, ns, "snap:1", owner=alice, team=None) is None
    with pytest.raises(JobError, match="already exists"):
        containers.commit(rerun, lambda *a: None)
    assert common.earlier_attempt_image(rerun, ns, "other:1", owner=alice, team=None) is None, "not in the store"


def test_the_next_workers_start_gives_no_row_to_a_killed_builds_intermediate_image(host, published, store, tmp_path):
    made = store.import_tarball(tarball(tmp_path), "app:1")
    store.tag("app:1", "berth-build-0a1b2c:s0")  # what a build killed mid-RUN leaves until the sweep
    images.sync_host_images(host)
    assert sorted(f"{i.name}:{i.tag}" for i in Image.objects.filter(host=host)) == ["app:1"]
    assert Image.objects.get(host=host).digest == made.digest
