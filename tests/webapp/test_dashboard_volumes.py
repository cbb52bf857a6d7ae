"""The Volumes page: it lists only the volumes a user may see, creates volumes in the user's (or a
team's) name space, and refuses removing another tenant's volume by id (404, nothing changed)."""

from __future__ import annotations

import pytest

from containers.models import AuditEvent, Job, Volume
from tests.webapp.test_dashboard_pages import dash  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def vols(dash):  # noqa: F811
    """blue's team volume `data`, the outsider's personal `data`, and the operator's personal `scratch`."""
    return {
        "blue": Volume.objects.create(name="data", host=dash.host, owner=dash.users["admin"], team=dash.team),
        "outsider": Volume.objects.create(name="data", host=dash.host, owner=dash.users["outsider"]),
        "operator": Volume.objects.create(name="scratch", host=dash.host, owner=dash.users["operator"]),
    }


def _rows(response) -> list[str]:
    assert response.status_code == 200
    html = response.content.decode()
    return sorted(int(part.split('"')[0]) for part in html.split('data-volume-id="')[1:])


def test_page_lists_only_visible_volumes(dash, vols):  # noqa: F811
    assert _rows(dash.client("operator").get("/volumes/")) == sorted([vols["blue"].pk, vols["operator"].pk])
    assert _rows(dash.client("viewer").get("/volumes/")) == [vols["blue"].pk]
    assert _rows(dash.client("outsider").get("/volumes/")) == [vols["outsider"].pk]
    assert _rows(dash.client("root").get("/volumes/")) == sorted(v.pk for v in vols.values())
    page = dash.client("admin").get("/volumes/").content.decode()
    assert 'href="/volumes/"' in page and f'action="/volumes/{vols["blue"].pk}/remove/"' in page
    assert f'/volumes/{vols["blue"].pk}/remove/' not in dash.client("operator").get("/volumes/").content.decode()


def test_removing_another_tenants_volume_by_id_is_refused(dash, vols):  # noqa: F811
    target = vols["outsider"]
    for role in ("admin", "operator", "viewer", "owner"):
        response = dash.client(role).post(f"/volumes/{target.pk}/remove/")
        assert response.status_code == 404, role
    assert Volume.objects.get(pk=target.pk).state == "ready" and not Job.objects.exists()
    assert AuditEvent.objects.filter(action="volume.remove", result="denied", target_id=str(target.pk)).count() == 4
    # the team's own volume: admins remove it, viewers are refused
    assert dash.client("viewer").post(f"/volumes/{vols['blue'].pk}/remove/").status_code == 302
    assert not Job.objects.exists()
    response = dash.client("admin").post(f"/volumes/{vols['blue'].pk}/remove/")
    assert response.status_code == 302 and Job.objects.get().kind == "volume.remove"
    assert dash.client("admin").post("/volumes/999999/remove/").status_code == 404


def test_create_in_own_and_team_name_space(dash, vols):  # noqa: F811
    c = dash.client("operator")
    assert c.post("/volumes/new/", {"name": "data", "host": dash.host.pk}).status_code == 302
    mine = Volume.objects.get(owner=dash.users["operator"], team=None, name="data")
    assert Job.objects.get(kind="volume.create").params["engine_id"] == mine.engine_id
    taken = c.post("/volumes/new/", {"name": "data", "host": dash.host.pk, "team": dash.team.pk})
    assert taken.status_code == 409 and "already exists in team blue" in taken.content.decode()
    bad = c.post("/volumes/new/", {"name": "../x", "host": dash.host.pk})
    assert bad.status_code == 400 and "invalid volume name" in bad.content.decode()
    assert Volume.objects.count() == 4


def test_container_page_shows_its_volume_mounts(dash, vols):  # noqa: F811
    from containers import services

    container, _ = services.create_container(dash.users["operator"], host=dash.host, image="busybox",
                                             name="with-vols", mounts=["scratch:/s:ro", "fresh:/f"], start=False)
    page = dash.client("operator").get(f"/containers/{container.pk}/").content.decode()
    assert 'data-field="volumes"' in page
    assert "scratch</a> → <code>/s</code> (read-only)" in page and "fresh</a> → <code>/f</code>" in page
