"""Dashboard pages of issue 15: Pull, Build, Registries and the image page's Push, through the services. A
saved secret is never rendered back; team B's admin cannot see or remove team A's credential; bad inputs are
shown next to their field and make no job."""

from __future__ import annotations

import pytest

import tests.webapp.test_dashboard_pages as pages
from containers.models import Job, RegistryCredential

dash = pages.dash
pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}
SECRET = "dash-Secret-0451"


def test_pages_render_with_the_nav_link(dash) -> None:
    client = dash.client("operator")
    for url in ("/images/pull/", "/images/build/", "/registries/"):
        r = client.get(url)
        assert r.status_code == 200 and 'href="/registries/"' in r.content.decode()
    images = client.get("/images/").content.decode()
    assert 'href="/images/pull/"' in images and 'href="/images/build/"' in images
    detail = client.get(f"/images/{dash.app.pk}/").content.decode()
    assert f'action="/images/{dash.app.pk}/push/"' in detail


def test_pull_queues_a_job_and_reports_bad_fields(dash) -> None:
    client = dash.client("owner")
    bad = client.post("/images/pull/", {"ref": "Bad Ref", "host": dash.host.pk}, **JSON).json()
    assert bad["ok"] is False and "ref" in bad["errors"] and not Job.objects.filter(kind="image.pull").exists()
    ok = client.post("/images/pull/", {"ref": "registry.local:5000/team/app:2", "host": dash.host.pk,
                                       "team": dash.team.pk, "platform": "linux/amd64"}, **JSON)
    assert ok.status_code == 202
    job = Job.objects.get(pk=ok.json()["job"]["id"])
    assert (job.kind, job.params["local"], job.params["platform"]) == ("image.pull", "registry.local-5000/team/app:2",
                                                                       "linux/amd64")


def test_build_from_a_pasted_containerfile(dash) -> None:
    client = dash.client("owner")
    bad = client.post("/images/build/", {"ref": "b:1", "host": dash.host.pk, "dockerfile": "FROM busybox\n",
                                         "build_args": "novalue"}, **JSON).json()
    assert bad["ok"] is False and "build_args" in bad["errors"]
    ok = client.post("/images/build/", {"ref": "b:1", "host": dash.host.pk, "build_args": "A=1\n",
                                        "dockerfile": "FROM busybox\nARG A\nRUN echo $A\n"}, **JSON)
    assert ok.status_code == 202, ok.content
    assert Job.objects.get(pk=ok.json()["job"]["id"]).params["build_args"] == {"A": "1"}


def test_registries_page_never_shows_a_secret_and_keeps_teams_apart(dash) -> None:
    admin = dash.client("admin")
    r = admin.post("/registries/", {"registry": "ghcr.io", "username": "bot", "password": SECRET,
                                    "team": dash.team.pk})
    assert r.status_code == 302
    row = RegistryCredential.objects.get()
    page = admin.get("/registries/").content.decode()
    assert "ghcr.io" in page and "bot" in page and SECRET not in page
    outsider = dash.client("outsider")
    assert f'id="credential-{row.pk}"' not in outsider.get("/registries/").content.decode()
    assert f'id="credential-{row.pk}"' in admin.get("/registries/").content.decode()
    assert outsider.post(f"/registries/{row.pk}/remove/").status_code == 404
    assert RegistryCredential.objects.filter(pk=row.pk).exists()
    assert admin.post(f"/registries/{row.pk}/remove/").status_code == 302
    assert not RegistryCredential.objects.exists()


def test_push_from_the_image_page(dash) -> None:
    r = dash.client("operator").post(f"/images/{dash.app.pk}/push/", {"destination": "ghcr.io/blue/app:1"}, **JSON)
    assert r.status_code == 202 and Job.objects.get(pk=r.json()["job"]["id"]).kind == "image.push"
    assert dash.client("outsider").post(f"/images/{dash.app.pk}/push/",
                                        {"destination": "ghcr.io/x/app:1"}).status_code == 404
