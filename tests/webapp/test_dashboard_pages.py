"""Dashboard pages render for each role, show only what the user may see (others: 404), and actions are
POST-only, CSRF-protected and go through services (a refusal changes nothing). No worker runs here:
submitted jobs stay queued."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from containers.models import AuditEvent, Container, Host, Image, Job, Team, TeamMembership
from tests.transfers import make_download

pytestmark = pytest.mark.django_db
ROLES = ("owner", "viewer", "operator", "admin", "outsider", "root")


@dataclass
class Dash:
    host: Host
    host_b: Host
    team: Team
    other_team: Team
    users: dict[str, Any]
    base: Image
    app: Image
    secret_image: Image
    web: Container
    secret: Container

    def client(self, role: str) -> Client:
        c = Client()
        c.force_login(self.users[role])
        return c


@pytest.fixture
def dash(db, tmp_path) -> Dash:
    """Two online hosts; team "blue" (viewer/operator/admin + owner's objects); outsider in team "crimson"."""
    User = get_user_model()
    now = timezone.now()
    host = Host.objects.create(name="dash-a", cpus=2, memory_bytes=4 << 30, kernel="6.1.0-test",
                               cgroup_version="v2", last_heartbeat=now, facts={"state_root": str(tmp_path / "a")})
    host_b = Host.objects.create(name="dash-b", cpus=2, memory_bytes=4 << 30, last_heartbeat=now,
                                 facts={"state_root": str(tmp_path / "b")})
    team, other = Team.objects.create(name="blue"), Team.objects.create(name="crimson")
    users = {n: User.objects.create_user(n, password=f"pw-{n}-123") for n in ROLES[:-1]}
    users["root"] = User.objects.create_superuser("root", password="pw-root-123")
    for role in ("viewer", "operator", "admin"):
        TeamMembership.objects.create(team=team, user=users[role], role=role)
    TeamMembership.objects.create(team=team, user=users["owner"], role="operator")
    TeamMembership.objects.create(team=other, user=users["outsider"], role="admin")
    history = {"history": [{"created": "2026-01-01T00:00:00Z", "created_by": "berth import", "comment": "base"}],
               "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}
    base = Image.objects.create(name="busybox", tag="latest", host=host, shared=True, size=1_234_567,
                                layers=["sha256:" + "1" * 64], config=history, digest="sha256:" + "0" * 64)
    app = Image.objects.create(name="app", tag="1", host=host, owner=users["owner"], team=team,
                               layers=["sha256:" + "2" * 64, "sha256:" + "3" * 64], size=2048)
    secret_image = Image.objects.create(name="secret", tag="1", host=host, owner=users["outsider"], team=other)
    web = Container.objects.create(name="web", host=host, image=app, image_ref="app:1", owner=users["owner"],
                                   team=team, state="running", started=now, command=["sh"],
                                   config={"command": ["sh"], "memory": 64 << 20})
    secret = Container.objects.create(name="hidden-box", host=host, image=secret_image, image_ref="secret:1",
                                      owner=users["outsider"], team=other, state="exited", exit_code=3)
    return Dash(host, host_b, team, other, users, base, app, secret_image, web, secret)


def snapshot():
    return (list(Container.objects.order_by("pk").values()), list(Image.objects.order_by("pk").values()),
            Job.objects.count())


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(dash, role):
    c = dash.client(role)
    sees_team = role in ("owner", "viewer", "operator", "admin", "root")
    pages = ["/containers/", "/containers/new/", "/images/", f"/images/{dash.base.pk}/", "/jobs/", "/hosts/"]
    if sees_team:
        pages += [f"/containers/{dash.web.pk}/", f"/images/{dash.app.pk}/"]
    for path in pages:
        r = c.get(path)
        assert r.status_code == 200, path
        body = r.content.decode()
        for link in ('href="/containers/"', 'href="/images/"', 'href="/jobs/"', 'href="/hosts/"',
                     'href="/audit/"', 'href="/tokens/"'):
            assert link in body, (path, link)
    listing = c.get("/containers/").content.decode()
    assert ("web" in listing and "app:1" in listing) == sees_team
    assert ("hidden-box" in listing) == (role in ("outsider", "root"))


@pytest.mark.parametrize("role", ["viewer", "outsider", "owner"])
def test_invisible_objects_are_404(dash, role):
    c = dash.client(role)
    if role == "outsider":
        hidden_c, hidden_i = dash.web, dash.app
    else:
        hidden_c, hidden_i = dash.secret, dash.secret_image
    assert c.get(f"/containers/{hidden_c.pk}/").status_code == 404
    assert c.get(f"/images/{hidden_i.pk}/").status_code == 404
    before = snapshot()
    assert c.post(f"/containers/{hidden_c.pk}/stop/").status_code == 404
    assert c.post(f"/containers/{hidden_c.pk}/remove/", {"force": "1"}).status_code == 404
    assert c.post(f"/images/{hidden_i.pk}/remove/").status_code == 404
    assert c.post(f"/images/{hidden_i.pk}/share/", {"shared": "1"}).status_code == 404
    assert c.get("/containers/999999/").status_code == 404
    state = c.get(f"/containers/state/?ids={hidden_c.pk}").json()
    assert state["containers"] == [{"type": "container", "id": hidden_c.pk, "state": "removed"}]
    assert snapshot() == before


def test_anonymous_gets_login_and_actions_change_nothing(dash):
    c = Client()
    for path in ("/containers/", "/containers/new/", f"/containers/{dash.web.pk}/", "/images/",
                 f"/images/{dash.base.pk}/"):
        r = c.get(path)
        assert r.status_code == 302 and r["Location"].startswith("/login/"), path
    before = snapshot()
    assert c.post(f"/containers/{dash.web.pk}/stop/")["Location"].startswith("/login/")
    assert c.post("/containers/new/", {"host": dash.host.pk, "image": dash.base.pk})["Location"].startswith("/login/")
    assert snapshot() == before


def test_actions_are_post_only_and_need_csrf(dash):
    c = dash.client("owner")
    before = snapshot()
    assert c.get(f"/containers/{dash.web.pk}/stop/").status_code == 405
    assert c.get(f"/images/{dash.app.pk}/remove/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(dash.users["owner"])
    assert strict.post(f"/containers/{dash.web.pk}/stop/").status_code == 403
    assert strict.post("/containers/bulk/", {"action": "stop", "ids": [dash.web.pk]}).status_code == 403
    assert snapshot() == before
    page = strict.get(f"/containers/{dash.web.pk}/").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 6  # every action form carries the token


def test_container_detail_shows_state_inspect_actions_and_history(dash):
    c = dash.client("operator")
    r = c.post(f"/containers/{dash.web.pk}/stop/", {"timeout": "3"})
    job = Job.objects.get(kind="container.stop")
    assert r.status_code == 302 and r["Location"] == f"/containers/{dash.web.pk}/?job={job.pk}"
    assert job.params == {"timeout": 3} and job.requested_by == dash.users["operator"]
    assert AuditEvent.objects.filter(action="container.stop", result="ok").exists()
    body = c.get(r["Location"]).content.decode()
    assert 'class="badge running"' in body and f'data-job-id="{job.pk}"' in body
    assert 'name="timeout"' in body and 'name="signal"' in body
    assert f'href="/containers/{dash.web.pk}/"' in c.get("/jobs/").content.decode()  # job rows link to targets
    inspect = body.split('data-role="inspect">')[1].split("</pre>")[0]
    data = json.loads(inspect.replace("&quot;", '"').replace("&#x27;", "'"))
    assert data["name"] == "web" and data["config"]["memory"] == 64 << 20 and data["state"] == "running"
    assert 'data-logs' in body  # the logs panel is included
    # Operators may not remove (an admin action): no button, and a refused POST changes nothing.
    assert 'data-action="remove"' not in body
    before = snapshot()
    r = c.post(f"/containers/{dash.web.pk}/remove/", {"force": "1"}, HTTP_ACCEPT="application/json")
    assert r.status_code == 200 and r.json()["ok"] is False  # in-band refusal for the page script
    assert r.json()["status"] == 403 and "remove" in r.json()["message"]
    assert snapshot() == before


def test_viewer_sees_but_may_not_act(dash):
    c = dash.client("viewer")
    body = c.get(f"/containers/{dash.web.pk}/").content.decode()
    assert 'data-action="stop"' not in body and "a team operator may act" in body
    before = snapshot()
    r = c.post(f"/containers/{dash.web.pk}/stop/", HTTP_ACCEPT="application/json")
    assert r.json()["status"] == 403 and r.json()["ok"] is False
    assert snapshot() == before


def test_impossible_transition_is_refused_readably(dash):
    c = dash.client("owner")
    before = snapshot()
    r = c.post(f"/containers/{dash.web.pk}/start/", follow=True)
    assert "it is running" in r.content.decode()
    assert snapshot() == before


def test_bulk_actions_queue_one_job_each_and_report_refusals(dash):
    stopped = Container.objects.create(name="idle", host=dash.host, image=dash.base, image_ref="busybox:latest",
                                       owner=dash.users["owner"], state="exited", exit_code=0)
    c = dash.client("owner")
    r = c.post("/containers/bulk/", {"action": "start", "ids": [dash.web.pk, stopped.pk, dash.secret.pk]},
               HTTP_ACCEPT="application/json")
    assert r.status_code == 202
    body = r.json()
    assert [j["target_id"] for j in body["jobs"]] == [str(stopped.pk)]
    assert body["errors"] == [{"id": dash.web.pk, "name": "web", "message": "cannot start container web: it is running"}]
    assert Job.objects.filter(kind="container.start").count() == 1  # the invisible one was not touched
    before = snapshot()
    assert c.post("/containers/bulk/", {"action": "explode", "ids": [stopped.pk]}).status_code == 302
    assert snapshot() == before


def test_hosts_page_lists_visible_containers_per_host(dash):
    body = dash.client("viewer").get("/hosts/").content.decode()
    assert f'href="/containers/{dash.web.pk}/"' in body and "hidden-box" not in body


def test_images_pages(dash):
    c = dash.client("admin")
    body = c.get("/images/").content.decode().replace("\xa0", " ")
    assert "busybox" in body and "1.2 MB" in body and "app" in body and "secret" not in body
    detail = c.get(f"/images/{dash.base.pk}/").content.decode()
    assert "berth import" in detail and "PATH=/bin" in detail  # history and config
    app = c.get(f"/images/{dash.app.pk}/").content.decode()
    assert f'href="/containers/{dash.web.pk}/"' in app  # containers using it
    assert 'name="team"' in app and "blue" in app and "crimson" not in app  # share: only the user's admin teams
    r = c.post(f"/images/{dash.app.pk}/share/", {"team": dash.team.pk, "shared": "1"})
    assert r.status_code == 302
    dash.app.refresh_from_db()
    assert dash.app.shared and dash.app.team == dash.team
    r = c.post(f"/images/{dash.app.pk}/tag/", {"ref": "app:2"}, HTTP_ACCEPT="application/json")
    assert r.status_code == 202 and Job.objects.get(kind="image.tag").params == {"ref": "app:2"}
    before = snapshot()
    r = c.post(f"/images/{dash.app.pk}/tag/", {"ref": "Bad Ref!"}, HTTP_ACCEPT="application/json")
    assert r.json()["status"] == 400 and "ref" in r.json()["errors"]
    r = c.post(f"/images/{dash.app.pk}/remove/", HTTP_ACCEPT="application/json")
    assert r.json()["status"] == 409 and "used by 1 container" in r.json()["message"]
    assert snapshot() == before


def test_download_serves_only_finished_export_files(dash, tmp_path, settings):
    settings.BERTH_TRANSFER_DIR = tmp_path
    job = Job.objects.create(kind="container.export", host=dash.host, target_type="container",
                             target_id=str(dash.web.pk), requested_by=dash.users["owner"], state="succeeded",
                             result={"size": 1000, "filename": "web.tar", "content_type": "application/x-tar"})
    make_download(job, b"x" * 1000)
    r = dash.client("operator").get(f"/jobs/{job.pk}/download/")
    assert r.status_code == 200 and r["Content-Length"] == "1000" and r["Content-Type"] == "application/x-tar"
    assert b"".join(r.streaming_content) == b"x" * 1000
    assert dash.client("outsider").get(f"/jobs/{job.pk}/download/").status_code == 404
    detail = dash.client("owner").get(f"/containers/{dash.web.pk}/").content.decode()
    assert f'href="/jobs/{job.pk}/download/"' in detail and "Filesystem export" in detail
    outside = Job.objects.create(kind="container.export", host=dash.host, target_type="container",
                                 target_id=str(dash.web.pk), requested_by=dash.users["owner"], state="succeeded",
                                 result={"path": "/etc/passwd", "filename": "x.tar"})
    assert dash.client("owner").get(f"/jobs/{outside.pk}/download/").status_code == 404


def test_logs_download_form_queues_a_logs_job(dash):
    r = dash.client("owner").post(f"/containers/{dash.web.pk}/logs/download/", {"timestamps": "1"})
    job = Job.objects.get(kind="container.logs")
    assert r.status_code == 302 and job.params["timestamps"] is True


def test_failed_create_page_offers_the_input_back(dash):
    job = Job.objects.create(kind="container.create", host=dash.host, target_type="container", target_id="4242",
                             requested_by=dash.users["owner"], state="failed", error_code="name_taken",
                             error_field="name", error="the name web is already in use on this host",
                             params={"name": "web", "image": "busybox:latest", "memory": 64 << 20,
                                     "command": ["sh", "-c", "echo hi"], "env": {"A": "1"}, "start": True})
    c = dash.client("owner")
    page = c.get(f"/containers/4242/?job={job.pk}")
    assert page.status_code == 404 and "already in use" in page.content.decode()
    form = c.get(f"/containers/new/?from_job={job.pk}").content.decode()
    name_field = form.split('data-field-name="name"')[1].split("</div>")[0]
    assert "already in use" in name_field and 'value="web"' in name_field
    assert "sh -c &#x27;echo hi&#x27;" in form and "A=1" in form and 'value="67108864"' in form
    assert dash.client("outsider").get(f"/containers/4242/?job={job.pk}").status_code == 404


def test_a_host_refusal_lands_at_the_field_the_job_names_not_the_words_of_its_message(dash):
    """The message mentions memory, image and user first; the job's error_field (workdir) decides."""
    job = Job.objects.create(kind="container.create", host=dash.host, target_type="container", target_id="4343",
                             requested_by=dash.users["owner"], state="failed", error_code="invalid",
                             error_field="workdir", error="memory, image and user are fine; /srv/x is not a directory",
                             params={"name": "web2", "image": "busybox:latest", "workdir": "/srv/x"})
    form = dash.client("owner").get(f"/containers/new/?from_job={job.pk}").content.decode()
    workdir = form.split('data-field-name="workdir"')[1].split("</div>")[0]
    assert "/srv/x is not a directory" in workdir
    for other in ("memory", "image", "user"):
        assert "is not a directory" not in form.split(f'data-field-name="{other}"')[1].split("</div>")[0], other
