"""The way in through the API without a worker (jobs stay queued): who may upload files into a container, a
session id reached only through its own container, bad input named by field, and the OpenAPI schema."""

from __future__ import annotations

import io
import tarfile

import pytest

from containers.models import AuditEvent, Job
from tests.transfers import staged_files, upload_of

pytestmark = pytest.mark.django_db

# Operations whose role matrix is here rather than in test_api_matrix.py (a tar body, a session id).
COVERED = {("put", "/api/v1/containers/{id}/archive"), ("get", "/api/v1/containers/{id}/exec/{session}"),
           ("get", "/api/v1/containers/{id}/exec/{session}/output"),
           ("post", "/api/v1/containers/{id}/exec/{session}/input")}
UPLOAD = {"viewer": 403, "operator": 202, "admin": 202, "outsider": 404, "root": 202, "owner": 202}


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


@pytest.mark.parametrize("role", list(UPLOAD))
def test_archive_put_matrix(world, api_client, settings, tmp_path, role):
    settings.BERTH_TRANSFER_DIR = tmp_path / "web-transfers"
    r = api_client(role).generic("PUT", f"/api/v1/containers/{world.web_a.pk}/archive?path=/tmp", _tar(),
                                 content_type="application/x-tar")
    assert r.status_code == UPLOAD[role], r.content[:300]
    jobs = list(Job.objects.filter(kind="container.archive_put"))
    if r.status_code >= 400:
        assert jobs == [] and staged_files() == []
        assert AuditEvent.objects.filter(action="container.archive_put", result="denied").exists()
        return
    (job,) = jobs
    assert r.json()["id"] == job.pk and job.params["path"] == "/tmp" and job.requested_by == world.users[role]
    assert "/" not in job.params["upload"]  # a transfer id the host fetches over HTTP, never a web-side path
    assert upload_of(job).read_bytes() == _tar()


def test_bad_input_is_named(world, api_client, settings, tmp_path):
    settings.BERTH_STATE_ROOT = tmp_path / "web-root"
    op = api_client("operator")
    pk = world.web_a.pk
    for body, field in (({"command": []}, "command"), ({"command": "x", "user": "a:b:c"}, "user"),
                        ({"command": "x", "workdir": "rel"}, "workdir"), ({"command": "x", "env": ["NOEQ"]}, "env"),
                        ({"command": "'unclosed"}, "command")):
        r = op.post(f"/api/v1/containers/{pk}/exec", body, format="json")
        assert r.status_code == 400 and field in r.json()["error"]["fields"], (body, r.content)
    r = op.get(f"/api/v1/containers/{pk}/files?path=etc")
    assert r.status_code == 400 and "path" in r.json()["error"]["fields"]
    r = op.generic("PUT", f"/api/v1/containers/{pk}/archive?path=/tmp", b"not a tar at all",
                   content_type="application/x-tar")
    assert r.status_code == 400 and "file" in r.json()["error"]["fields"]
    world.web_a.state = "exited"
    world.web_a.save()
    r = op.post(f"/api/v1/containers/{pk}/exec", {"command": "sh"}, format="json")
    assert r.status_code == 409 and "not running" in r.json()["error"]["message"]
    assert not Job.objects.filter(kind="container.exec").exists()


def test_a_session_is_reached_only_through_its_container(world, api_client):
    """A session made on team B's container: team A's operator cannot reach it through A's container."""
    job_b = Job.objects.create(kind="container.exec", host=world.host, target_type="container",
                               target_id=str(world.web_b.pk), state="succeeded",
                               result={"session": "feedbeef", "status": "running"}, params={"command": ["sh"]})
    assert job_b.pk
    for role, pk, code in (("operator", world.web_a.pk, 404), ("operator", world.web_b.pk, 404),
                           ("viewer", world.web_a.pk, 403), ("outsider", world.web_b.pk, 200),
                           ("outsider", world.web_a.pk, 404)):
        r = api_client(role).get(f"/api/v1/containers/{pk}/exec/feedbeef")
        assert r.status_code == code, (role, pk, r.content[:200])
    assert api_client("outsider").get(f"/api/v1/containers/{world.web_b.pk}/exec/feedbeef").json()["session"] \
        == "feedbeef"
    for role, pk, code in (("operator", world.web_a.pk, 404), ("viewer", world.web_a.pk, 403),
                           ("outsider", world.web_a.pk, 404)):
        client = api_client(role)
        assert client.get(f"/api/v1/containers/{pk}/exec/feedbeef/output").status_code == code
        assert client.generic("POST", f"/api/v1/containers/{pk}/exec/feedbeef/input", b"x",
                              content_type="application/octet-stream").status_code == code


def test_way_in_is_in_the_schema():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path, methods in (("/api/v1/containers/{id}/exec", {"post"}), ("/api/v1/containers/{id}/top", {"get"}),
                          ("/api/v1/containers/{id}/stats", {"get"}),
                          ("/api/v1/containers/{id}/archive", {"get", "put"}),
                          ("/api/v1/containers/{id}/files", {"get"}),
                          ("/api/v1/containers/{id}/exec/{session}", {"get"})):
        assert methods <= set(paths[path]), path
