"""Named volumes across tenants on the real stack (issue #10): real redis-server, a real Celery worker,
the real engine, runtime and monitor. Users act through the services (the path of the API and the
dashboard) as non-superusers; what a container sees is read from its own output.

The attack: user B runs a container mounting `data` (and A's volume's engine id as a name) while user A
has a volume `data` holding a secret on the same host. B must read an empty volume of its own and must
not be able to change A's data; A's next container still finds the secret."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from containers import services
from containers.models import Container, Job, Volume
from containers.services import volumes as services_volumes
from tests.e2e.test_container_jobs import _no_cgroup_parent_left, host_worker, log_text, row_where, seed  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def run_as(user, worker, wait_job, wait_for, name: str, script: str, mounts: list[str]) -> tuple[Container, str]:
    """Create and start `sh -c script` as `user`, wait for it to exit, and return its output."""
    row, job = services.create_container(user, host=worker.host, image="busybox:latest", name=name,
                                         command=["sh", "-c", script], mounts=mounts)
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, row, "exited", state="exited")
    logs = wait_job(services.container_action(user, row, "logs"))
    return row, log_text(logs)


def test_a_volume_name_never_reaches_another_tenants_volume(host_worker, wait_job, wait_for):  # noqa: F811
    users = get_user_model().objects
    alice, bob = users.create_user("alice", password="pw-alice-123"), users.create_user("bob", password="pw-bob-123")
    w = host_worker("vol-e2e")
    seed(w, wait_job)

    _, out = run_as(alice, w, wait_job, wait_for, "a-writer",
                    "echo a-secret > /data/secret && echo wrote", ["data:/data"])
    assert out == "wrote\n"
    a_vol = Volume.objects.get(owner=alice, name="data")
    a_file = w.state_root / "volumes" / a_vol.engine_id / "_data" / "secret"
    assert a_file.read_text() == "a-secret\n"

    # B names `data`, and A's volume's engine id too: both are names in B's own name space.
    script = ("ls -A /data /x; cat /data/secret /x/secret 2>/dev/null; "
              "echo b-was-here > /data/secret; echo b-was-here > /x/secret; echo done")
    b_row, out = run_as(bob, w, wait_job, wait_for, "b-reader", script, ["data:/data", f"{a_vol.engine_id}:/x"])
    assert out == "/data:\n\n/x:\ndone\n"  # two empty volumes: nothing of A's to read
    assert "a-secret" not in out
    b_vols = {v.name: v for v in Volume.objects.filter(owner=bob)}
    assert set(b_vols) == {"data", a_vol.engine_id} and a_vol.pk not in {v.pk for v in b_vols.values()}
    assert a_file.read_text() == "a-secret\n"  # B's writes went to B's own volumes
    for vol in b_vols.values():
        assert (w.state_root / "volumes" / vol.engine_id / "_data" / "secret").read_text() == "b-was-here\n"

    # Volumes persist across containers: A's second container finds the secret.
    _, out = run_as(alice, w, wait_job, wait_for, "a-reader", "cat /data/secret", ["data:/data:ro"])
    assert out == "a-secret\n"

    # B's volume goes only once its container is gone; its removal leaves A's alone.
    with pytest.raises(services.ServiceError) as refused:
        services_volumes.remove_volume(bob, b_vols["data"])
    assert refused.value.code == "volume_in_use" and refused.value.field == "volume"
    with pytest.raises(services.ServiceError) as hidden:
        services_volumes.remove_volume(bob, a_vol)
    assert hidden.value.status == 404
    job = wait_job(services.container_action(bob, b_row, "remove", params={"force": True}))
    assert job.state == Job.State.SUCCEEDED, job.error
    job = wait_job(services_volumes.remove_volume(bob, b_vols["data"]))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert not Volume.objects.filter(pk=b_vols["data"].pk).exists()
    assert not (w.state_root / "volumes" / b_vols["data"].engine_id).exists()
    assert a_file.read_text() == "a-secret\n"
