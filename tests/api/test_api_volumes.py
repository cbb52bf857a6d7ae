"""Named volumes are tenant objects (issue #10): a volume name lives in its owner's (or team's) name space.

The attack: user B names user A's volume in a container's mounts (`data:/data`) to read or overwrite it.
Every request is made through the DRF client as a non-superuser with a real token."""

from __future__ import annotations

import pytest

from containers.models import AuditEvent, Container, Job, Volume

pytestmark = pytest.mark.django_db


def _create_container(client, world, name: str, mounts: list[str], **extra):
    return client.post("/api/v1/containers", {"image": "busybox", "host": world.host.name, "name": name,
                                              "mounts": mounts, "start": False, **extra}, format="json")


@pytest.fixture
def a_data(world) -> Volume:
    """User A ("owner") has a personal volume `data` on the host."""
    return Volume.objects.create(name="data", host=world.host, owner=world.users["owner"])


def _listed(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.content[:300]
    return sorted((v["name"], v["id"]) for v in response.json()["results"])


def test_b_naming_as_volume_gets_a_new_volume_of_its_own(world, api_client, a_data):
    b = api_client("outsider")
    before = Volume.objects.filter(pk=a_data.pk).values().get()
    r = _create_container(b, world, "b-reader", ["data:/data", "data:/again:ro"])
    assert r.status_code == 202, r.content[:300]
    container = Container.objects.get(pk=r.json()["container"]["id"])
    b_data = Volume.objects.get(owner=world.users["outsider"], name="data")
    assert b_data.pk != a_data.pk and b_data.engine_id != a_data.engine_id and b_data.team is None
    job = Job.objects.get(pk=r.json()["job"]["id"])
    # The host is told B's volume's engine id: it mounts exactly that directory, never A's.
    assert job.params["mounts"] == [f"{b_data.engine_id}:/data", f"{b_data.engine_id}:/again:ro"]
    assert a_data.engine_id not in str(job.params)
    assert list(container.volumes.all()) == [b_data]
    made = Job.objects.get(kind="volume.create")
    assert (made.target_id, made.params["engine_id"], made.requested_by) == (str(b_data.pk), b_data.engine_id,
                                                                           world.users["outsider"])
    assert Volume.objects.filter(pk=a_data.pk).values().get() == before
    assert not a_data.containers.exists()


def test_b_cannot_list_retrieve_or_delete_as_volume(world, api_client, a_data):
    b = api_client("outsider")
    assert _listed(b.get("/api/v1/volumes")) == []
    assert _listed(b.get("/api/v1/volumes?owner=owner")) == []  # filters never widen what is visible
    assert _listed(b.get("/api/v1/volumes?name=data")) == []
    for response in (b.get(f"/api/v1/volumes/{a_data.pk}"), b.delete(f"/api/v1/volumes/{a_data.pk}?force=1")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert Volume.objects.get(pk=a_data.pk).state == "ready" and not Job.objects.exists()
    assert AuditEvent.objects.filter(action="volume.remove", result="denied", actor=world.users["outsider"]).exists()
    # A sees and reuses her own volume: the same engine id, no new volume.
    a = api_client("owner")
    assert _listed(a.get("/api/v1/volumes")) == [("data", a_data.pk)]
    r = _create_container(a, world, "a-writer", ["data:/data"])
    assert r.status_code == 202, r.content[:300]
    assert Job.objects.get(pk=r.json()["job"]["id"]).params["mounts"] == [f"{a_data.engine_id}:/data"]
    assert Volume.objects.count() == 1 and not Job.objects.filter(kind="volume.create").exists()


def test_two_tenants_may_each_create_data_but_not_twice(world, api_client, a_data):
    r = api_client("outsider").post("/api/v1/volumes", {"name": "data", "host": world.host.pk}, format="json")
    assert r.status_code == 202, r.content[:300]
    assert r.json()["volume"]["name"] == "data" and r.json()["volume"]["id"] != a_data.pk
    again = api_client("owner").post("/api/v1/volumes", {"name": "data", "host": world.host.pk}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "name_taken" and "name" in again.json()["error"]["fields"]


@pytest.mark.parametrize("body, field", [
    ({"name": "../etc", "host": "api-node"}, "name"), ({"name": "", "host": "api-node"}, "name"),
    ({"name": "ok", "host": "api-node", "labels": {"a": 1}}, "labels"), ({"name": "ok", "host": "nowhere"}, "host"),
    ({"name": "ok", "host": "api-node", "team": 999}, "team"),
])
def test_bad_input_names_the_field(world, api_client, body, field):
    r = api_client("operator").post("/api/v1/volumes", body, format="json")
    assert 400 <= r.status_code < 500, r.content[:300]
    assert field in {f.split(".")[0] for f in r.json()["error"]["fields"]}, r.content[:300]
    assert not Volume.objects.exists() and not Job.objects.exists()


def test_team_volumes_per_role(world, api_client):
    team_data = Volume.objects.create(name="data", host=world.host, owner=world.users["admin"], team=world.team_a)
    for role in ("viewer", "operator", "admin"):
        assert _listed(api_client(role).get("/api/v1/volumes")) == [("data", team_data.pk)]
        assert api_client(role).get(f"/api/v1/volumes/{team_data.pk}").status_code == 200
    assert _listed(api_client("outsider").get("/api/v1/volumes")) == []
    # A team container's `data` is the team's volume; a personal container's is the creator's own.
    op = api_client("operator")
    r = _create_container(op, world, "team-box", ["data:/data"], team=world.team_a.pk)
    assert r.status_code == 202, r.content[:300]
    assert Job.objects.get(pk=r.json()["job"]["id"]).params["mounts"] == [f"{team_data.engine_id}:/data"]
    r = _create_container(op, world, "own-box", ["data:/data"])
    own = Volume.objects.get(owner=world.users["operator"], team=None, name="data")
    assert Job.objects.get(pk=r.json()["job"]["id"]).params["mounts"] == [f"{own.engine_id}:/data"]
    # Viewers may not make team containers (nor mount team volumes); removal needs the admin role.
    assert _create_container(api_client("viewer"), world, "v-box", ["data:/data"], team=world.team_a.pk
                             ).status_code == 403
    Container.objects.filter(name="team-box").delete()
    for role in ("viewer", "operator"):
        r = api_client(role).delete(f"/api/v1/volumes/{team_data.pk}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = api_client("admin").delete(f"/api/v1/volumes/{team_data.pk}")
    assert r.status_code == 202 and r.json()["kind"] == "volume.remove"
    assert Volume.objects.get(pk=team_data.pk).state == "removing"


def test_remove_refused_while_a_container_uses_it(world, api_client, a_data):
    a = api_client("owner")
    r = _create_container(a, world, "user-of-data", ["data:/data"])
    assert r.status_code == 202
    for suffix in ("", "?force=1"):
        refused = a.delete(f"/api/v1/volumes/{a_data.pk}{suffix}")
        assert refused.status_code == 409, refused.content[:300]
        error = refused.json()["error"]
        assert error["code"] == "volume_in_use" and "user-of-data" in error["message"] and "volume" in error["fields"]
    assert Volume.objects.get(pk=a_data.pk).state == "ready" and not Job.objects.filter(kind="volume.remove")
    # While its container is being removed: only with force.
    Container.objects.filter(name="user-of-data").update(state="removing")
    assert a.delete(f"/api/v1/volumes/{a_data.pk}").status_code == 409
    assert a.delete(f"/api/v1/volumes/{a_data.pk}?force=1").status_code == 202
    assert Job.objects.get(kind="volume.remove").params["force"] is True
    # A volume being removed cannot be mounted by a new container.
    r = _create_container(a, world, "late", ["data:/data"])
    assert r.status_code == 409 and "mounts" in r.json()["error"]["fields"]
