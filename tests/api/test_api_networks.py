"""Networks are tenant objects (issue #13): a network name lives in its owner's (or team's) name space.

The attacks: user B names user A's network in a container's networks (to reach A's containers), connects
A's container to B's network, or publishes a host port another service needs. Every request is made
through the DRF client as a non-superuser with a real token."""

from __future__ import annotations

import pytest

from containers.models import AuditEvent, Container, Job, Network

pytestmark = pytest.mark.django_db


def _container(client, world, name: str, **extra):
    return client.post("/api/v1/containers", {"image": "busybox", "host": world.host.name, "name": name,
                                              "start": False, **extra}, format="json")


@pytest.fixture
def a_app(world) -> Network:
    """User A ("owner") has a personal network `app` on the host."""
    return Network.objects.create(name="app", namespace=f"u{world.users['owner'].pk}", host=world.host,
                                  owner=world.users["owner"], subnet="10.90.1.0/24", gateway="10.90.1.1")


def _listed(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return sorted(n["name"] for n in response.json()["results"])


def test_b_cannot_name_as_network_and_gets_no_trace_of_it(world, api_client, a_app):
    b = api_client("outsider")
    r = _container(b, world, "spy", networks=["app"])
    assert r.status_code == 400, r.content[:300]
    assert r.json()["error"]["fields"] == {"networks": ["no such network 'app' on host api-node"]}
    assert not Container.objects.filter(name="spy").exists() and not Job.objects.exists()
    assert _listed(b.get("/api/v1/networks")) == [] and _listed(b.get("/api/v1/networks?name=app")) == []
    for response in (b.get(f"/api/v1/networks/{a_app.pk}"), b.delete(f"/api/v1/networks/{a_app.pk}?force=1")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert AuditEvent.objects.filter(action="network.remove", result="denied", actor=world.users["outsider"]).exists()
    # B may have an `app` of its own: another engine name, so another bridge on the host
    r = b.post("/api/v1/networks", {"name": "app", "host": world.host.name}, format="json")
    assert r.status_code == 202, r.content[:300]
    job = Job.objects.get(pk=r.json()["job"]["id"])
    assert job.kind == "network.create" and job.params["engine_name"] == f"u{world.users['outsider'].pk}.app"
    assert job.params["engine_name"] != a_app.engine_name


def test_a_container_joins_its_own_network_by_engine_name_with_its_name_as_alias(world, api_client, a_app):
    a = api_client("owner")
    r = _container(a, world, "db", networks=["app"], network_aliases=["database"])
    assert r.status_code == 202, r.content[:300]
    params = Job.objects.get(pk=r.json()["job"]["id"]).params
    assert params["networks"] == [a_app.engine_name] and params["requested_networks"] == ["app"]
    assert params["network_aliases"] == ["db", "database"]
    assert params["network_defs"][0]["subnet"] == "10.90.1.0/24"
    assert list(Container.objects.get(name="db").networks.all()) == [a_app]


def test_no_network_given_joins_the_name_spaces_own_default(world, api_client):
    for who in ("owner", "outsider"):
        r = _container(api_client(who), world, f"c-{who}")
        assert r.status_code == 202, r.content[:300]
        params = Job.objects.get(pk=r.json()["job"]["id"]).params
        assert params["networks"] == [f"u{world.users[who].pk}.bridge"]
    defaults = Network.objects.filter(name="bridge")
    assert defaults.count() == 2 and {n.owner.username for n in defaults} == {"owner", "outsider"}


@pytest.mark.parametrize("ports", [["80:80"], ["0.0.0.0:8080:80"], ["10.0.0.1:8080:80/udp"]])
def test_privileged_or_public_ports_are_an_admins_choice(world, api_client, settings, ports):
    r = _container(api_client("owner"), world, "pub", ports=ports)
    assert r.status_code == 403 and list(r.json()["error"]["fields"]) == ["ports"]
    assert _container(api_client("root"), world, "pub-root", ports=ports).status_code == 202
    settings.BERTH_PUBLISH_ANY_PORT = True
    assert _container(api_client("owner"), world, "pub-ok", ports=ports).status_code == 202


def test_loopback_ports_and_random_ports_are_everyones(world, api_client):
    r = _container(api_client("owner"), world, "web", ports=["8080:80", "80", "127.0.0.1::53/udp"])
    assert r.status_code == 202, r.content[:300]


def test_host_networking_is_for_administrators(world, api_client):
    r = _container(api_client("owner"), world, "h", networks=["host"])
    assert r.status_code == 403 and r.json()["error"]["fields"]["networks"]
    r = _container(api_client("root"), world, "h", networks=["host"])
    assert r.status_code == 202 and Job.objects.get(pk=r.json()["job"]["id"]).params["networks"] == ["host"]


def test_container_mode_only_within_ones_own_name_space(world, api_client):
    r = _container(api_client("outsider"), world, "side", networks=["container:web-a"])
    assert r.status_code == 400 and r.json()["error"]["fields"]["networks"]
    r = _container(api_client("outsider"), world, "side", networks=["container:web-b"], team=world.team_b.pk)
    assert r.status_code == 202, r.content[:300]
    assert Job.objects.get(pk=r.json()["job"]["id"]).params["networks"] == [f"container:{world.web_b.engine_name}"]


def test_connect_across_owners_is_refused(world, api_client, a_app):
    b = api_client("outsider")
    b_net = b.post("/api/v1/networks", {"name": "trap", "host": world.host.name, "team": world.team_b.pk},
                   format="json").json()["network"]
    # B cannot pull A's container onto B's network (A's container is invisible to B)
    r = b.post(f"/api/v1/networks/{b_net['id']}/connect", {"container": world.web_a.pk}, format="json")
    assert r.status_code == 404
    # ... nor put its container on A's network (invisible too)
    r = b.post(f"/api/v1/networks/{a_app.pk}/connect", {"container": world.web_b.pk}, format="json")
    assert r.status_code == 404
    # A sees both of its own, but a team A container and A's personal network are different name spaces
    r = api_client("owner").post(f"/api/v1/networks/{a_app.pk}/connect", {"container": world.web_a.pk},
                                 format="json")
    assert r.status_code == 400 and "container" in r.json()["error"]["fields"]
    assert not Job.objects.filter(kind="network.connect").exists()


def test_connect_disconnect_and_remove_in_use(world, api_client):
    admin = api_client("admin")
    net = admin.post("/api/v1/networks", {"name": "backend", "host": world.host.name, "team": world.team_a.pk,
                                          "subnet": "10.90.2.0/24", "labels": {"tier": "db"}},
                     format="json").json()["network"]
    r = admin.post(f"/api/v1/networks/{net['id']}/connect", {"container": world.web_a.pk, "aliases": ["w"]},
                   format="json")
    assert r.status_code == 202, r.content[:300]
    params = Job.objects.get(pk=r.json()["id"]).params
    assert params["container"] == world.web_a.engine_id and params["aliases"] == ["web-a", "w"]
    r = admin.delete(f"/api/v1/networks/{net['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "network_in_use"
    viewer = api_client("viewer")
    r = viewer.post(f"/api/v1/networks/{net['id']}/disconnect", {"container": world.web_a.pk}, format="json")
    assert r.status_code == 403
    r = admin.post(f"/api/v1/networks/{net['id']}/disconnect", {"container": world.web_a.pk}, format="json")
    assert r.status_code == 202
    assert admin.delete(f"/api/v1/networks/{net['id']}").status_code == 202
    assert Network.objects.get(pk=net["id"]).state == "removing"


@pytest.mark.parametrize("body, field", [
    ({"name": "../x"}, "name"), ({"name": "host"}, "name"), ({"name": "n", "subnet": "10.1.2.3/24"}, "subnet"),
    ({"name": "n", "subnet": "127.0.0.0/8"}, "subnet"), ({"name": "n", "subnet": "10.9.0.0/24",
                                                         "gateway": "10.8.0.1"}, "gateway"),
    ({"name": "n", "gateway": "10.8.0.1"}, "gateway"), ({"name": "n", "labels": {"a": 1}}, "labels.a"),
])
def test_bad_network_input_names_the_field(world, api_client, body, field):
    r = api_client("owner").post("/api/v1/networks", {"host": world.host.name, **body}, format="json")
    assert r.status_code == 400, r.content[:300]
    assert field in r.json()["error"]["fields"], r.json()
