"""The role matrix (tests/api/test_api_matrix.py) checks each allowed request's Job — kind, target, params —
without a worker. Here a representative subset runs for real: team A's operator and admin act on a running
container of the team through the REST API (DRF client, token, non-superusers), a real Celery worker runs the
jobs with the real engine, and the host's own view of the container (ContainerManager on its state root) must
show what each action says. A viewer's and an outsider's attempts change nothing on the host."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from containers import services
from containers.models import Image, Job, Team, TeamMembership
from tests.support import clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# PID 1 handles TERM (the kernel drops unhandled signals to a namespace's init) and says which one came.
SCRIPT = "trap 'echo got TERM; exit 143' TERM; echo up; while true; do sleep 0.1; done"


@pytest.fixture
def team_world(berth_worker, wait_job, wait_for):
    from django.contrib.auth import get_user_model

    from containers import jobs

    worker = berth_worker("matrix-node")
    try:
        seeded = wait_job(jobs.submit("image.seed", worker.host, params={}), timeout=120)
        assert seeded.state == Job.State.SUCCEEDED, seeded.error
        User = get_user_model()
        team = Team.objects.create(name="team-a")
        users = {name: User.objects.create_user(name, password=f"pw-{name}-123")
                 for name in ("owner", "viewer", "operator", "admin", "outsider")}
        for role in ("viewer", "operator", "admin"):
            TeamMembership.objects.create(team=team, user=users[role], role=role)
        TeamMembership.objects.create(team=team, user=users["owner"], role="admin")
        row, job = services.create_container(users["owner"], host=worker.host, image="busybox:latest", name="web",
                                             team=team, command=["sh", "-c", SCRIPT])
        assert wait_job(job).state == Job.State.SUCCEEDED, job.error
        yield worker, team, users, row
    finally:
        worker.discard()
        clean_state_root(Path(worker.state_root))


def client_of(user):
    from rest_framework.test import APIClient

    from containers.api.auth import create_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user, 'matrix-e2e')[1]}")
    return client


def test_allowed_actions_do_on_the_host_what_they_say(team_world, wait_job, wait_for):
    from workers.engine.containers import ContainerManager

    worker, team, users, row = team_world
    host = ContainerManager(worker.state_root)

    def on_host() -> dict:
        return host.inspect(row.engine_id)

    wait_for(lambda: on_host()["state"] == "running", what="web to run on the host")
    op, admin = client_of(users["operator"]), client_of(users["admin"])

    def act(client, verb: str, body=None, expect: int = 202) -> Job | None:
        response = client.post(f"/api/v1/containers/{row.pk}/{verb}", body or {}, format="json")
        assert response.status_code == expect, (verb, response.content[:300])
        if expect != 202:
            return None
        job = wait_job(Job.objects.get(pk=response.json()["id"]))
        assert job.state == Job.State.SUCCEEDED, (verb, job.error)
        row.refresh_from_db()
        return job

    # Refused: nothing reaches the host.
    first_pid = on_host()["pid"]
    act(client_of(users["viewer"]), "stop", expect=403)
    act(client_of(users["outsider"]), "kill", {"signal": "SIGKILL"}, expect=404)
    assert (on_host()["state"], on_host()["pid"]) == ("running", first_pid)
    assert not Job.objects.filter(kind__in=("container.stop", "container.kill")).exists()

    # The operator's actions, each seen on the host.
    act(op, "pause")
    assert on_host()["state"] == "paused"
    act(op, "unpause")
    assert on_host()["state"] == "running"
    act(op, "kill", {"signal": "SIGTERM"})
    wait_for(lambda: on_host()["state"] == "exited", what="web to end on SIGTERM")
    assert on_host()["exit_code"] == 143
    wait_for(lambda: (row.refresh_from_db(), row.state == "exited")[1], what="the row to follow the host")
    act(op, "start")
    assert on_host()["state"] == "running" and on_host()["pid"] != first_pid
    before_restart = on_host()["pid"]
    act(op, "restart", {"timeout": 5})
    assert on_host()["state"] == "running" and on_host()["pid"] != before_restart
    logs = op.get(f"/api/v1/containers/{row.pk}/logs")
    assert logs.status_code == 200
    assert b"".join(logs.streaming_content if logs.streaming else [logs.content]).decode() == \
        "up\ngot TERM\nup\ngot TERM\nup\n"
    export = act(op, "export")
    download = op.get(f"/api/v1/jobs/{export.pk}/download")
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(download.streaming_content))) as tar:
        assert "bin/busybox" in [n.lstrip("./") for n in tar.getnames()]
    commit = act(op, "commit", {"ref": "snap:1"})
    image = Image.objects.get(pk=commit.result["image_id"])
    assert (image.name, image.tag, image.team_id, image.owner_id) == ("snap", "1", team.pk, users["operator"].pk)
    from workers.engine.images.store import ImageStore

    assert ImageStore(worker.state_root).resolve(image.engine_ref).digest == image.digest
    act(op, "stop", {"timeout": 5})
    assert on_host()["state"] == "exited"
    # Removing is for the team's admins: the operator is refused, the admin's removal empties the host.
    assert op.delete(f"/api/v1/containers/{row.pk}?force=true").status_code == 403
    response = admin.delete(f"/api/v1/containers/{row.pk}?force=true")
    assert response.status_code == 202, response.content[:300]
    assert wait_job(Job.objects.get(pk=response.json()["id"])).state == Job.State.SUCCEEDED
    assert [c["id"] for c in host.list(all=True)] == []
