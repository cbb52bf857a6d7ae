"""The create and import forms: each bad input shows a clear message next to its field, keeps what was
typed, and changes nothing (no Container row, no Image row, no Job, no upload left behind)."""

from __future__ import annotations

import io
import re
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

import tests.webapp.test_dashboard_pages as pages
from containers.models import Container, Image, Job
from tests.transfers import upload_of

dash = pages.dash  # the fixture: two hosts, a team with one user per role, their objects
snapshot = pages.snapshot

pytestmark = pytest.mark.django_db


def field_html(body: str, name: str) -> str:
    """The markup of one field block (label, input, help, error)."""
    return body.split(f'data-field-name="{name}"', 1)[1].split("</div>", 1)[0]


def field_error(body: str, name: str) -> str:
    block = field_html(body, name)
    m = re.search(r'<p class="field-error"[^>]*>(.*?)</p>', block, re.S)
    return m.group(1).strip() if m and "hidden" not in m.group(0) else ""


def create(dash, role="owner", json=False, **fields):
    data = {"host": dash.host.pk, "image": dash.base.pk, "name": "", "command": "", "restart_policy": "no",
            "start": "on", **fields}
    extra = {"HTTP_ACCEPT": "application/json"} if json else {}
    return dash.client(role).post("/containers/new/", data, **extra)


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def test_create_queues_the_job_with_parsed_fields(dash):
    r = create(dash, name="api", command="sh -c 'echo hi; sleep 1'", env="A=1\nB=two words", memory="64m",
               cpus="0.5", pids_limit="50", restart_policy="on-failure", max_retries="3", labels="tier=web",
               volumes="data:/data", workdir="/tmp", hostname="api-box", team=dash.team.pk)
    c = Container.objects.get(name="api")
    job = Job.objects.get(kind="container.create")
    assert r.status_code == 302 and r["Location"] == f"/containers/{c.pk}/?job={job.pk}"
    p = job.params
    assert p["command"] == ["sh", "-c", "echo hi; sleep 1"] and p["env"] == {"A": "1", "B": "two words"}
    assert p["memory"] == 64 << 20 and p["cpus"] == 0.5 and p["pids_limit"] == 50
    assert p["restart_policy"] == "on-failure:3" and p["labels"] == {"tier": "web"}
    volume = c.volumes.get()  # made in the container's team, named as asked, mounted by its engine id
    assert volume.name == "data" and volume.team == dash.team and p["mounts"] == [f"{volume.engine_id}:/data"]
    assert p["requested_mounts"] == ["data:/data"]
    assert p["workdir"] == "/tmp" and p["hostname"] == "api-box" and p["start"] is True
    assert c.team == dash.team and c.owner == dash.users["owner"] and c.image == dash.base


def test_create_form_offers_online_hosts_and_images_per_host(dash):
    from datetime import timedelta

    from django.utils import timezone

    dash.host_b.last_heartbeat = timezone.now() - timedelta(hours=1)
    dash.host_b.save()
    body = dash.client("owner").get("/containers/new/").content.decode()
    host_select = field_html(body, "host")
    assert "dash-a" in host_select and "dash-b" not in host_select  # offline hosts are not offered
    image_select = field_html(body, "image")
    assert f'data-host="{dash.host.pk}"' in image_select and "busybox:latest" in image_select
    assert "secret:1" not in image_select  # not visible to this user


@pytest.mark.parametrize("fields,field,words", [
    ({"name": "web", "team": "TEAM"}, "name", "already in use on host dash-a"),  # in the team's name space
    ({"name": "bad name!"}, "name", "invalid container name"),
    ({"host": "HOST_B"}, "image", "is not on host dash-b"),
    ({"image": "SECRET"}, "image", "no such image"),  # another team's image: not even its name is shown
    ({"memory": "1"}, "memory", "memory limit 1 B is below the minimum of 6 MiB"),
    ({"memory": "lots"}, "memory", "invalid size"),
    ({"cpus": "0"}, "cpus", "cpus must be more than 0"),
    ({"pids_limit": "0"}, "pids_limit", "pids limit 0 is below the minimum of 1"),
    ({"labels": "no equals sign"}, "labels", "expected KEY=VALUE"),
    ({"command": "sh -c 'unclosed"}, "command", "invalid command"),
    ({"restart_policy": "sometimes"}, "restart_policy", "Select a valid choice"),
    ({"volumes": "/etc:/host-etc"}, "volumes", "only superusers may bind-mount"),
])
def test_bad_create_input_shows_the_message_next_to_the_field_and_changes_nothing(dash, fields, field, words):
    fields = {k: {"HOST_B": dash.host_b.pk, "SECRET": dash.secret_image.pk, "TEAM": dash.team.pk}.get(v, v)
              for k, v in fields.items()}
    before = snapshot()
    r = create(dash, **{"command": "echo kept", **fields})
    assert r.status_code == 400
    body = r.content.decode()
    assert words in field_error(body, field), field_error(body, field) or body
    assert "secret" not in body
    assert 'value="echo kept"' in body or "sh -c &#x27;unclosed" in body  # the input is kept
    assert snapshot() == before
    # The same refusal for the page script: in-band, naming the field.
    r = create(dash, json=True, **{"command": "echo kept", **fields})
    data = r.json()
    assert data["ok"] is False and words in " ".join(data["errors"][field])
    assert snapshot() == before


def test_viewer_may_not_run_a_team_image_and_nothing_is_made(dash):
    before = snapshot()
    r = create(dash, role="viewer", image=dash.app.pk, name="nope")
    assert r.status_code == 400 and "you may not run containers from app:1" in field_error(r.content.decode(), "image")
    assert snapshot() == before


def test_import_accepts_a_tarball_and_refuses_anything_else(dash, settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = tmp_path / "web-root"
    c = dash.client("owner")
    uploads = tmp_path / "web-root" / "uploads"
    for name, data, words in (("notes.txt", b"plain text, not an archive\n" * 30, "not a tar archive"),
                              ("empty.tar", b"", "empty")):
        before = snapshot()
        r = c.post("/images/import/", {"host": dash.host.pk, "ref": "mine:1",
                                       "file": SimpleUploadedFile(name, data)})
        assert r.status_code == 400
        body = r.content.decode()
        assert words in field_error(body, "file") and 'value="mine:1"' in body
        assert snapshot() == before
        assert not uploads.exists() or list(uploads.iterdir()) == []  # nothing staged is left behind
    before = snapshot()
    r = c.post("/images/import/", {"host": dash.host.pk, "ref": "Bad Ref!", "file": SimpleUploadedFile("a.tar", tarball())},
               HTTP_ACCEPT="application/json")
    assert r.json()["ok"] is False and "ref" in r.json()["errors"] and snapshot() == before
    r = c.post("/images/import/", {"host": dash.host.pk, "ref": "mine:1", "team": dash.team.pk,
                                   "file": SimpleUploadedFile("a.tar", tarball())}, HTTP_ACCEPT="application/json")
    assert r.status_code == 202
    job = Job.objects.get(kind="image.import")
    assert r.json()["job"]["id"] == job.pk and job.params["ref"] == "mine:1" and job.params["team_id"] == dash.team.pk
    staged = upload_of(job)
    assert staged.parent == uploads and staged.read_bytes() == tarball()
    assert not Image.objects.filter(name="mine").exists()  # the row is the worker's to make


def test_commit_form_refusal_names_the_field(dash):
    before = snapshot()
    r = dash.client("owner").post(f"/containers/{dash.web.pk}/commit/", {"ref": "Not A Ref"},
                                  HTTP_ACCEPT="application/json")
    assert r.json()["ok"] is False and "ref" in r.json()["errors"]
    assert snapshot() == before
    r = dash.client("owner").post(f"/containers/{dash.web.pk}/commit/", {"ref": "web-snap:1", "message": "m"})
    assert r.status_code == 302
    assert Job.objects.get(kind="container.commit").params["ref"] == "web-snap:1"
