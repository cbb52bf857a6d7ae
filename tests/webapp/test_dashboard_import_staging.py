"""The dashboard's import form stages its file the way the API does: anonymously in the web server's staging
dir while the form is parsed, handed to the service by path (one copy, no temporary file of Django's), with
the CSRF check still made and nothing left when the request is refused."""

from __future__ import annotations

import io
import tarfile

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from containers.models import Job
from containers.transfer_files import is_locked
from tests.transfers import staged_files, upload_of
from tests.webapp.test_dashboard_pages import dash  # noqa: F401  (the fixture)


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def post(client, dash, **extra):  # noqa: F811
    return client.post("/images/import/", {"host": dash.host.pk, "ref": "mine:1", "team": dash.team.pk,
                                           "file": SimpleUploadedFile("a.tar", tarball()), **extra},
                       HTTP_ACCEPT="application/json")


def test_the_import_form_stages_once_and_keeps_its_csrf_check(dash, settings, tmp_path):  # noqa: F811
    settings.BERTH_TRANSFER_DIR = tmp_path
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(dash.users["owner"])
    assert post(guarded, dash).status_code == 403 and staged_files() == [] and not Job.objects.exists()

    r = post(dash.client("owner"), dash)
    assert r.status_code == 202, r.content
    job = Job.objects.get(kind="image.import")
    assert staged_files() == [f"uploads/{upload_of(job).name}"] and upload_of(job).read_bytes() == tarball()
    assert not is_locked(upload_of(job)), "the request let go: the job's Transfer owns the file"

    settings.BERTH_MAX_UPLOAD_BYTES = 100
    r = post(dash.client("owner"), dash, ref="big:1")
    assert r.json()["status"] == 400 and r.json()["errors"] == {"file": ["the upload is larger than 100 bytes"]}
    assert staged_files() == [f"uploads/{upload_of(job).name}"] and Job.objects.count() == 1
