"""Export/save/log files expire: the web side's pass (containers/transfer.py) removes the files workers pushed
to its staging dir once older than the maximum age, marks their jobs, and a download then answers 410 Gone
with a message."""

from __future__ import annotations

import os
import time

from containers import transfer
from containers.models import Job


def export_job(world, age: float) -> Job:
    job = Job.objects.create(kind="container.export", host=world.host, target_type="container",
                             target_id=str(world.web_a.pk), requested_by=world.users["owner"], state="succeeded",
                             result={"size": 100, "filename": "web-a.tar", "content_type": "application/x-tar"})
    path = transfer.download_file(job)  # where the worker's push puts it
    path.write_bytes(b"t" * 100)
    os.utime(path, (time.time() - age, time.time() - age))
    return job


def test_an_export_older_than_the_maximum_age_is_removed_and_its_download_says_410(world, api_client, tmp_path,
                                                                                   settings):
    settings.BERTH_TRANSFER_DIR = tmp_path
    settings.BERTH_EXPORT_MAX_AGE = 48 * 3600  # downloads themselves expire nothing before the pass below
    old = export_job(world, age=25 * 3600)
    fresh = export_job(world, age=3600)
    operator = api_client("operator")
    assert operator.get(f"/api/v1/jobs/{old.pk}/download").status_code == 200  # before the pass

    assert transfer.expire_downloads(age=24 * 3600) == [old.pk]

    assert not transfer.download_file(old).exists() and transfer.download_file(fresh).exists()
    r = operator.get(f"/api/v1/jobs/{old.pk}/download")
    assert r.status_code == 410, r.content
    assert r.json()["error"] == {"code": "gone", "message": "the file expired after 24 h and was removed: "
                                                            "run the job again"}
    job = operator.get(f"/api/v1/jobs/{old.pk}").json()
    assert job["result"]["expired"] is True and job["download_url"] is None and "expired" in job["message"]
    assert operator.get(f"/api/v1/jobs/{fresh.pk}/download").status_code == 200
    # an outsider still learns nothing about the job
    assert api_client("outsider").get(f"/api/v1/jobs/{old.pk}/download").status_code == 404
    assert transfer.expire_downloads(age=24 * 3600) == []  # nothing more to do


def test_a_download_past_the_maximum_age_expires_when_asked_for(world, api_client, tmp_path, settings):
    settings.BERTH_TRANSFER_DIR = tmp_path
    settings.BERTH_EXPORT_MAX_AGE = 3600
    old = export_job(world, age=2 * 3600)
    r = api_client("operator").get(f"/api/v1/jobs/{old.pk}/download")
    assert r.status_code == 410 and "expired after 1 h" in r.json()["error"]["message"], r.content
    assert not transfer.download_file(old).exists()
