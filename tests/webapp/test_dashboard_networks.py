"""The Networks page and the network fields of the create form and the container page: a user sees and
removes only networks of its own (or its teams'), names only its own networks in a new container, and the
container page shows addresses and published ports as links."""

from __future__ import annotations

import pytest

from containers.models import AuditEvent, Job, Network
from tests.webapp.test_dashboard_forms import create, field_error
from tests.webapp.test_dashboard_pages import dash  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def nets(dash):  # noqa: F811
    """blue's team network `app` (namespace t<blue>), and the outsider's personal `app`."""
    return {
        "blue": Network.objects.create(name="app", namespace=f"t{dash.team.pk}", host=dash.host,
                                       owner=dash.users["admin"], team=dash.team, subnet="10.90.5.0/24"),
        "outsider": Network.objects.create(name="app", namespace=f"u{dash.users['outsider'].pk}", host=dash.host,
                                           owner=dash.users["outsider"], subnet="10.90.6.0/24"),
    }


def _rows(response) -> list[int]:
    assert response.status_code == 200
    return sorted(int(p.split('"')[0]) for p in response.content.decode().split('data-network-id="')[1:])


def test_page_lists_only_visible_networks(dash, nets):  # noqa: F811
    assert _rows(dash.client("operator").get("/networks/")) == [nets["blue"].pk]
    assert _rows(dash.client("outsider").get("/networks/")) == [nets["outsider"].pk]
    assert _rows(dash.client("root").get("/networks/")) == sorted(n.pk for n in nets.values())
    assert "10.90.6.0/24" not in dash.client("operator").get("/networks/").content.decode()


def test_removing_another_tenants_network_by_id_is_refused(dash, nets):  # noqa: F811
    for role in ("admin", "operator", "owner"):
        assert dash.client(role).post(f"/networks/{nets['outsider'].pk}/remove/").status_code == 404, role
    assert Network.objects.get(pk=nets["outsider"].pk).state == "ready" and not Job.objects.exists()
    assert AuditEvent.objects.filter(action="network.remove", result="denied").count() == 3
    assert dash.client("admin").post(f"/networks/{nets['blue'].pk}/remove/").status_code == 302
    assert Job.objects.get().kind == "network.remove"


def test_create_a_network_from_the_page(dash, nets):  # noqa: F811
    c = dash.client("operator")
    assert c.post("/networks/new/", {"name": "web", "host": dash.host.pk, "subnet": "10.90.7.0/24"}).status_code == 302
    job = Job.objects.get(kind="network.create")
    assert job.params["engine_name"] == f"u{dash.users['operator'].pk}.web" and job.params["subnet"] == "10.90.7.0/24"
    bad = c.post("/networks/new/", {"name": "x", "host": dash.host.pk, "subnet": "10.90.7.1/24"})
    assert bad.status_code == 400 and "subnet" in bad.content.decode()


def test_create_form_network_fields_reach_the_job(dash, nets):  # noqa: F811
    r = create(dash, role="operator", name="api", team=str(dash.team.pk), networks="app", ports="8080:80\n53/udp",
               network_aliases="svc, api2", dns="10.0.0.53", extra_hosts="db.local:10.1.2.3")
    assert r.status_code == 302, r.content.decode()[:500]
    params = Job.objects.get(kind="container.create").params
    assert params["networks"] == [nets["blue"].engine_name]
    assert params["ports"] == ["8080:80", "53/udp"] and params["dns"] == ["10.0.0.53"]
    assert params["network_aliases"] == ["api", "svc", "api2"] and params["extra_hosts"] == ["db.local:10.1.2.3"]


def test_create_form_refuses_another_tenants_network_and_privileged_ports(dash, nets):  # noqa: F811
    r = create(dash, role="owner", name="x", networks="app")  # owner's personal space has no `app`
    assert r.status_code == 400 and "no such network" in field_error(r.content.decode(), "networks")
    r = create(dash, role="owner", name="y", ports="80:80")
    assert r.status_code in (400, 403) and "below 1024" in field_error(r.content.decode(), "ports"), field_error(r.content.decode(), "ports")
    assert not Job.objects.exists()


def test_container_page_shows_addresses_and_port_links(dash):  # noqa: F811
    web = dash.web
    ns = f"t{dash.team.pk}"
    web.namespace = ns
    web.network = {"mode": "bridge", "ports": [{"host_ip": "127.0.0.1", "host_port": 32768, "container_port": 80,
                                                "protocol": "tcp"}],
                   "networks": {f"{ns}.app": {"ip": "10.90.5.2", "prefix_len": 24, "gateway": "10.90.5.1",
                                              "mac": "aa:bb:cc:dd:ee:ff", "aliases": ["web", "db"]}}}
    web.save()
    body = dash.client("viewer").get(f"/containers/{web.pk}/").content.decode()
    assert "<code>10.90.5.2/24</code>" in body and ">app</a>" in body and f"{ns}.app" not in body
    assert 'href="http://127.0.0.1:32768/"' in body and "80/tcp → 127.0.0.1:32768" in body
