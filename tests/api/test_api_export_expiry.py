"""Export/save/log files expire: the worker's cleanup pass removes them once older than the maximum age,
marks their jobs, and a download then answers 410 Gone with a message."""

from __future__ import annotations

import os
import time

from containers.models import Job
from workers.handlers.expiry import expire_exports


def export_job(world, root, name: str, age: float) -> Job:
    path = root / "exports" / f"{name}.tar"
    path.write_bytes(b"t" * 100)
    os.utime(path, (time.time() - age, time.time() - age))
    job = Job.objects.create(kind="container.export", host=world.host, target_type="container",
                             target_id=str(world.web_a.pk), requested_by=world.users["owner"], state="succeeded",
                             result={"path": str(path), "size": 100, "filename": "web-a.tar",
                                     "content_type": "application/x-tar"})
    path.rename(path.with_name(f"{job.pk}.tar"))  # as the worker names them: <job id><suffix>
    job.result["path"] = str(path.with_name(f"{job.pk}.tar"))
    job.save(update_fields=["result"])
    return job


def test_an_export_older_than_the_maximum_age_is_removed_and_its_download_says_410(world, api_client, tmp_path):
    world.host.facts = {"state_root": str(tmp_path)}
    world.host.save()
    (tmp_path / "exports").mkdir()
    old = export_job(world, tmp_path, "old", age=25 * 3600)
    fresh = export_job(world, tmp_path, "fresh", age=3600)
    operator = api_client("operator")
    assert operator.get(f"/api/v1/jobs/{old.pk}/download").status_code == 200  # before the pass

    assert expire_exports(world.host, tmp_path, age=24 * 3600) == [old.pk]

    assert not os.path.exists(old.result["path"]) and os.path.exists(fresh.result["path"])
    r = operator.get(f"/api/v1/jobs/{old.pk}/download")
    assert r.status_code == 410, r.content
    assert r.json()["error"] == {"code": "gone", "message": "the file expired after 24 h and was removed: "
                                                            "run the job again"}
    job = operator.get(f"/api/v1/jobs/{old.pk}").json()
    assert job["result"]["expired"] is True and job["download_url"] is None and "expired" in job["message"]
    assert operator.get(f"/api/v1/jobs/{fresh.pk}/download").status_code == 200
    # an outsider still learns nothing about the job
    assert api_client("outsider").get(f"/api/v1/jobs/{old.pk}/download").status_code == 404
    assert expire_exports(world.host, tmp_path, age=24 * 3600) == []  # nothing more to do
