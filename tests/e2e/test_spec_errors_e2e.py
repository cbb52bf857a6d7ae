"""A host's refusal reaches the user's input by the field the engine named (the job's error_code and
error_field), not by guessing from the message's words: a non-superuser creates a container through the REST
API with a user the image does not have; the real worker refuses it; the job in the API carries the error as
the API's errors are (fields.user), and the dashboard's "try again" form shows it at the user input."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from containers import jobs
from containers.models import Container, Job
from tests.support import clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_user_missing_from_the_image_reaches_the_api_fields_and_the_dashboard_field(berth_worker, wait_job,
                                                                                      client):
    user = get_user_model().objects.create_user("spec-tenant", password="pw-spec-tenant-1")
    worker = berth_worker("spec-host")
    try:
        seeded = wait_job(jobs.submit("image.seed", worker.host, params={}), timeout=120)
        assert seeded.state == Job.State.SUCCEEDED, seeded.error
        api = APIClient()
        api.force_authenticate(user)
        r = api.post("/api/v1/containers", {"image": "busybox:latest", "host": worker.host_name, "name": "who",
                                            "user": "ghost", "command": ["true"]}, format="json")
        assert r.status_code == 202, r.content
        job = wait_job(Job.objects.get(pk=r.json()["job"]["id"]), timeout=120)
        assert job.state == Job.State.FAILED and (job.error_code, job.error_field) == ("invalid", "user"), job.error
        assert "'ghost' is not in /etc/passwd of image" in job.error
        assert not Container.objects.filter(name="who").exists()

        body = api.get(f"/api/v1/jobs/{job.pk}").json()
        assert (body["error_code"], body["error_field"]) == ("invalid", "user")
        assert body["error_detail"] == {"code": "invalid", "message": job.error, "fields": {"user": [job.error]}}

        client.force_login(user)
        page = client.get(f"/containers/new/?from_job={job.pk}").content.decode()
        user_field = page.split('data-field-name="user"')[1].split("</div>")[0]
        image_field = page.split('data-field-name="image"')[1].split("</div>")[0]
        assert "is not in /etc/passwd" in user_field and 'value="ghost"' in user_field
        assert "is not in /etc/passwd" not in image_field
    finally:
        clean_state_root(worker.state_root)
