"""Container limits through the API: system defaults applied, per-team maxima refused at the field, and
a team's limits set by superusers only."""

from __future__ import annotations

import io
import tarfile

import pytest

from containers.models import AuditEvent, Container, Job

GiB, MiB = 1 << 30, 1 << 20


def create(client, **body):
    return client.post("/api/v1/containers", {"image": "app-a:1", "host": "api-node", "start": False, **body},
                       format="json")


def field_error(response, field: str) -> str:
    assert response.status_code == 400, (response.status_code, response.content)
    error = response.json()["error"]
    assert list(error["fields"]) == [field], error
    return error["message"]


def test_a_create_without_limits_gets_the_system_defaults_visible_in_inspect(world, api_client):
    op = api_client("operator")
    r = create(op, team=world.team_a.pk, name="plain")
    assert r.status_code == 202, r.content
    row = op.get(f"/api/v1/containers/{r.json()['container']['id']}").json()
    assert row["config"]["pids_limit"] == 2048
    assert row["config"]["memory"] == GiB and row["config"]["disk"] == 10 * GiB
    job = Job.objects.get(pk=r.json()["job"]["id"])
    assert (job.params["pids_limit"], job.params["memory"], job.params["disk"]) == (2048, GiB, 10 * GiB)


def test_requests_above_the_team_maximum_are_refused_at_the_field(world, api_client):
    root, op = api_client("root"), api_client("operator")
    r = root.patch(f"/api/v1/teams/{world.team_a.pk}/limits",
                   {"max_pids_limit": 500, "default_pids_limit": 100, "max_memory": 256 * MiB,
                    "max_disk": GiB, "max_cpus": 1}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["effective"]["max_pids_limit"] == 500 and r.json()["overrides"]["max_memory"] == 256 * MiB

    before = Container.objects.count()
    assert "maximum of 500 for team team-a" in field_error(create(op, team=world.team_a.pk, pids_limit=1000),
                                                            "pids_limit")
    assert "maximum of 256 MiB" in field_error(create(op, team=world.team_a.pk, memory="512m"), "memory")
    assert "maximum of 1 GiB" in field_error(create(op, team=world.team_a.pk, disk="2g"), "disk")
    assert "maximum of 1 for team team-a" in field_error(create(op, team=world.team_a.pk, cpus=2), "cpus")
    assert Container.objects.count() == before and not Job.objects.filter(kind="container.create").exists()
    assert AuditEvent.objects.filter(action="container.create", result="invalid").count() == 4

    # within the maxima: accepted; unset limits get the team's defaults (capped by its maxima)
    r = create(op, team=world.team_a.pk, name="capped", pids_limit=500, cpus=1)
    assert r.status_code == 202, r.content
    r = create(op, team=world.team_a.pk, name="defaults")
    config = op.get(f"/api/v1/containers/{r.json()['container']['id']}").json()["config"]
    assert (config["pids_limit"], config["memory"], config["disk"]) == (100, 256 * MiB, GiB)

    # another team and personal containers keep the system values
    assert "maximum of 8192 for this system" in field_error(create(op, image="busybox", pids_limit=9000),
                                                             "pids_limit")
    r = create(op, image="busybox", name="personal", pids_limit=4000)
    assert r.status_code == 202, r.content


def test_only_superusers_change_a_teams_limits(world, api_client):
    url = f"/api/v1/teams/{world.team_a.pk}/limits"
    admin = api_client("admin")
    assert admin.get(url).status_code == 200  # members may read them
    r = admin.patch(url, {"max_pids_limit": 1 << 20}, format="json")
    assert r.status_code == 403, r.content
    assert api_client("outsider").get(url).status_code == 404
    assert api_client("outsider").patch(url, {"max_pids_limit": 5}, format="json").status_code == 404
    assert admin.get(url).json()["effective"]["max_pids_limit"] == 8192

    root = api_client("root")
    assert "max_memory" in root.patch(url, {"max_memory": -1}, format="json").json()["error"]["fields"]
    r = root.put(url, {"default_memory": 2 * GiB, "max_memory": GiB}, format="json")
    assert field_error(r, "default_memory")
    r = root.put(url, {"max_pids_limit": 0}, format="json")  # 0: no maximum for this team
    assert r.status_code == 200 and r.json()["effective"]["max_pids_limit"] is None
    assert create(api_client("operator"), team=world.team_a.pk, pids_limit=20000).status_code == 202


@pytest.fixture
def uploads(settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = tmp_path
    return tmp_path / "uploads"


def test_an_import_carries_the_teams_cap_on_its_expanded_size(world, api_client, uploads):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    root, op = api_client("root"), api_client("operator")
    assert root.patch(f"/api/v1/teams/{world.team_a.pk}/limits", {"max_expanded_upload": 5 * MiB},
                      format="json").status_code == 200
    r = op.generic("POST", f"/api/v1/images/import?ref=mine:1&team={world.team_a.pk}", buf.getvalue(),
                   content_type="application/x-tar")
    assert r.status_code == 202, r.content
    assert Job.objects.get(pk=r.json()["id"]).params["max_expanded"] == 5 * MiB
    r = op.generic("POST", "/api/v1/images/import?ref=mine:2", buf.getvalue(), content_type="application/x-tar")
    assert Job.objects.get(pk=r.json()["id"]).params["max_expanded"] == 32 * GiB


def test_volume_sizes_get_the_teams_default_and_are_refused_above_its_maximum(world, api_client):
    from containers.models import Volume

    root, op = api_client("root"), api_client("operator")
    r = root.patch(f"/api/v1/teams/{world.team_a.pk}/limits",
                   {"default_volume_size": 64 * MiB, "max_volume_size": 128 * MiB}, format="json")
    assert r.status_code == 200, r.content
    too_big = op.post("/api/v1/volumes", {"name": "big", "host": world.host.pk, "team": world.team_a.pk,
                                          "size": "1g"}, format="json")
    assert too_big.status_code == 400 and "size" in too_big.json()["error"]["fields"], too_big.content
    assert "maximum of 128 MiB" in too_big.json()["error"]["message"]
    ok = op.post("/api/v1/volumes", {"name": "dflt", "host": world.host.pk, "team": world.team_a.pk},
                 format="json")
    assert ok.status_code == 202, ok.content
    assert ok.json()["volume"]["size"] == 64 * MiB
    assert Job.objects.get(pk=ok.json()["job"]["id"]).params["size"] == 64 * MiB
    # a volume a container's mount makes gets the default too, and the host is told its size
    r = create(op, team=world.team_a.pk, name="mounter", mounts=["auto:/data"])
    assert r.status_code == 202, r.content
    assert Volume.objects.get(name="auto", team=world.team_a).size == 64 * MiB
    assert Job.objects.get(pk=r.json()["job"]["id"]).params["volumes"][0]["size"] == 64 * MiB
    assert not Volume.objects.filter(name="big").exists()
