"""Limits end to end, through the services (the one write path) as a non-superuser and a real worker:
a decompression bomb uploaded for import or load fails readably and leaves nothing in the store or the
uploads; a container created with no limits runs under the defaults and its writes stop at its disk."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from containers import jobs, services
from containers.models import Container, Image, Job, Team, TeamLimits, TeamMembership
from tests.bombs import docker_archive_with_layer, zeros_tar_gz
from workers.engine.images import ImageStore

pytestmark = [pytest.mark.e2e, pytest.mark.root]
MiB = 1 << 20


@pytest.fixture
def team_operator(transactional_db):
    user = get_user_model().objects.create_user("tenant", password="pw-tenant-123")
    team = Team.objects.create(name="tenants")
    TeamMembership.objects.create(team=team, user=user, role="admin")
    TeamLimits.objects.create(team=team, max_expanded_upload=64 * MiB, default_disk=32 * MiB)
    return user, team


def test_a_gzip_bomb_upload_fails_readably_and_leaves_nothing(berth_worker, wait_job, team_operator, tmp_path,
                                                               settings):
    user, team = team_operator
    worker = berth_worker("bomb-host")
    store = ImageStore(worker.state_root)
    blobs_before = sorted(p.name for p in store.blobs.iterdir())
    bomb = zeros_tar_gz(tmp_path / "bomb.tar.gz")
    nested = docker_archive_with_layer(tmp_path / "nested.tar", bomb)

    for submit, upload in ((services.import_image, bomb), (services.load_images, bomb),
                           (services.load_images, nested)):
        extra = {"ref": "bomb:1"} if submit is services.import_image else {}
        with open(upload, "rb") as f:
            job = submit(user, host=worker.host_name, upload=f, team=team.pk, **extra)
        assert job.params["max_expanded"] == 64 * MiB
        job = wait_job(job, timeout=120)
        assert job.state == Job.State.FAILED, (job.kind, job.state, job.result)
        assert "expands to more than 64 MiB" in job.error, job.error
        assert str(worker.state_root) not in job.error and "Traceback" not in job.error
        assert list(services.uploads_dir().iterdir()) == [], "the upload is deleted"
        assert sorted(p.name for p in store.blobs.iterdir()) == blobs_before
        assert list(store.tmp.iterdir()) == [] and not Image.objects.filter(name="bomb").exists()


def test_a_container_made_without_limits_gets_the_teams_defaults_on_the_host(berth_worker, wait_job, wait_for,
                                                                             team_operator):
    from tests.engine.conftest import host_mounts_under
    from tests.engine.containers.test_limits import loop_devices_of
    from tests.support import clean_state_root
    from workers.engine.containers import ContainerManager
    from workers.engine.storage import quota

    user, team = team_operator
    worker = berth_worker("limits-host")
    try:
        seeded = wait_job(jobs.submit("image.seed", worker.host, params={}), timeout=120)  # the host's busybox
        assert seeded.state == Job.State.SUCCEEDED, seeded.error
        row, job = services.create_container(user, host=worker.host_name, image="busybox:latest", team=team.pk,
                                             command=["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=100"])
        assert wait_job(job, timeout=120).state == Job.State.SUCCEEDED, job.error
        assert (row.config["pids_limit"], row.config["disk"], row.config["memory"]) == (2048, 32 * MiB, 1 << 30)
        wait_for(lambda: Container.objects.get(pk=row.pk).state == "exited", 60, "the container to exit")
        row.refresh_from_db()
        mgr = ContainerManager(worker.state_root)
        text = "".join(r["log"] for r in mgr.logs(row.engine_id))
        assert "No space left on device" in text, text
        info = mgr.inspect(row.engine_id)
        assert info["config"]["pids_limit"] == 2048 and info["config"]["disk"] == 32 * MiB
        image = quota.image_of(worker.state_root / "containers" / row.engine_id / "rw")
        # its own filesystem: the sparse image holds the 32 MiB it was allowed, not the 100 MiB asked for
        assert image.is_file() and 16 * MiB < os.stat(image).st_blocks * 512 <= 33 * MiB

        job = services.container_action(user, row, "remove")
        assert wait_job(job, timeout=120).state == Job.State.SUCCEEDED, job.error
        assert not loop_devices_of(image) and not image.exists()
        assert not host_mounts_under(worker.state_root / "containers")
    finally:
        worker.discard()
        clean_state_root(worker.state_root)
