"""The internal transfer endpoint (containers/transfer_views.py) and the staging dir's sweep
(containers/transfer_files.py): only the holder of a transfer's secret fetches or pushes its file, a push is
single use and bounded, and a file whose writer was killed after naming it is swept once nobody holds it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from containers import jobs, transfer, transfer_files
from containers.api.auth import create_token
from containers.models import Host, Job
from containers.services.uploads import save_upload
from containers.transfer_model import Transfer
from tests.transfers import submit_upload, upload_of

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def staging(settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = tmp_path
    settings.BERTH_MAX_DOWNLOAD_BYTES = 1000
    return tmp_path


@pytest.fixture
def host():
    return Host.objects.create(name="far-away")


def url(row: Transfer) -> str:
    return f"/internal/transfers/{row.pk}/"


def test_an_upload_is_fetched_only_with_its_secret_and_consumed_once(staging, host, monkeypatch):
    monkeypatch.setattr(jobs, "send", lambda job: None)  # no broker here: the job only has to exist
    user = get_user_model().objects.create_user("tenant", password="pw-tenant-123")
    job, path = submit_upload("image.import", host, b"tar bytes" * 100, requested_by=user, ref="x:1")
    row = Transfer.objects.get(job=job)
    assert "upload" in job.params and row.token not in str(job.params), "the secret never reaches the job"
    c = Client()
    # No secret, a wrong one, or the user's own API token: the same 404 as an unknown transfer.
    assert c.get(url(row)).status_code == 404
    assert c.get(url(row), HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert c.get(url(row), HTTP_AUTHORIZATION=f"Bearer {create_token(user, 't')[1]}").status_code == 404
    assert c.get(f"/internal/transfers/{uuid.uuid4()}/", HTTP_AUTHORIZATION=f"Bearer {row.token}").status_code == 404
    auth = {"HTTP_AUTHORIZATION": f"Bearer {row.token}"}
    assert c.put(url(row), b"x", content_type="application/octet-stream", **auth).status_code == 405
    r = c.get(url(row), **auth)
    assert r.status_code == 200 and b"".join(r.streaming_content) == b"tar bytes" * 100
    assert c.delete(url(row), **auth).status_code == 204
    assert not path.exists() and not Transfer.objects.exists()
    assert c.get(url(row), **auth).status_code == 404
    # An expired transfer is refused like an unknown one.
    job2, _ = submit_upload("image.import", host, b"more" * 10, ref="y:1")
    Transfer.objects.filter(job=job2).update(expires=timezone.now() - timedelta(seconds=1))
    row2 = Transfer.objects.get(job=job2)
    assert c.get(url(row2), HTTP_AUTHORIZATION=f"Bearer {row2.token}").status_code == 404


def test_a_push_is_single_use_bounded_and_only_for_a_running_job(staging, host):
    job = Job.objects.create(kind="image.save", host=host, state=Job.State.RUNNING)
    row = Transfer.objects.create(id=uuid.uuid4(), kind="download", host=host, job=job,
                                  expires=timezone.now() + timedelta(hours=1))
    c = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {row.token}"}
    r = c.put(url(row), b"z" * 1001, content_type="application/octet-stream", **auth)
    assert r.status_code == 413 and "BERTH_MAX_DOWNLOAD_BYTES" in r.json()["error"]["message"]
    assert transfer_files.sweep(lambda kind, p: True) == [] and not transfer.download_file(job).exists()
    assert c.get(url(row), **auth).status_code == 405
    r = c.put(url(row), b"z" * 600, content_type="application/octet-stream", **auth)
    assert r.status_code == 201 and transfer.download_file(job).read_bytes() == b"z" * 600
    assert c.put(url(row), b"w" * 10, content_type="application/octet-stream", **auth).status_code == 404
    assert transfer.download_file(job).read_bytes() == b"z" * 600
    done = Job.objects.create(kind="image.save", host=host, state=Job.State.SUCCEEDED)
    late = Transfer.objects.create(id=uuid.uuid4(), kind="download", host=host, job=done,
                                   expires=timezone.now() + timedelta(hours=1))
    r = c.put(url(late), b"q", content_type="application/octet-stream", HTTP_AUTHORIZATION=f"Bearer {late.token}")
    assert r.status_code == 409


STAGE_AND_HANG = """
import os, sys, io
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
import django; django.setup()
from django.conf import settings
settings.BERTH_TRANSFER_DIR = sys.argv[1]
from containers.services.uploads import save_upload
path = save_upload(io.BytesIO(b"half-handled upload"))
print(path, flush=True)
sys.stdin.read()  # hold the named file (and its lock) until killed
"""


def test_a_file_named_by_a_killed_writer_is_swept_and_a_held_one_is_kept(staging, host):
    proc = subprocess.Popen([sys.executable, "-c", STAGE_AND_HANG, str(staging)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        named = Path(proc.stdout.readline().strip())
        assert named.parent == staging / "uploads" and named.is_file()
        # Alive and holding it (its row not committed yet): the sweep keeps it.
        assert transfer.sweep() == [] and named.exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    mine = save_upload(io.BytesIO(b"this process still holds me"))
    # Killed between naming the file and committing its row: nobody holds it, nobody owns it, it goes.
    assert transfer.sweep() == [named] and not named.exists() and mine.exists()
    transfer_files.release_path(mine)
    assert transfer.sweep() == [mine], "released without a row: unowned"


def test_the_sweep_keeps_owned_files_and_drops_those_of_finished_jobs(staging, host, monkeypatch):
    monkeypatch.setattr(jobs, "send", lambda job: None)
    job, path = submit_upload("image.import", host, b"owned" * 10, ref="z:1")
    assert transfer.sweep() == [] and path.exists()
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)
    assert transfer.sweep() == [upload_of(job)] and not path.exists() and not Transfer.objects.exists()
