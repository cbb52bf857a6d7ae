"""The create API speaks the container spec: a field the engine does not apply yet is refused at that field
(code not_supported) with nothing made, never silently dropped; a failed job carries its error as the API's
errors are."""

from __future__ import annotations

import pytest

from containers.models import AuditEvent, Container, Job


@pytest.mark.parametrize("field,value", [("cap_drop", ["NET_RAW"]), ("cap_add", ["NET_ADMIN"]), ("init", True),
                                         ("healthcheck", {"test": ["CMD", "true"]}), ("stop_timeout", 3)])
def test_a_field_not_applied_yet_is_refused_at_that_field(world, api_client, field, value):
    before = (Job.objects.count(), Container.objects.count())
    r = api_client("operator").post("/api/v1/containers", {"image": "busybox", "name": "later", field: value},
                                    format="json")
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "not_supported" and list(error["fields"]) == [field]
    assert error["message"] == f"{field} is not supported yet: leave it out"
    assert (Job.objects.count(), Container.objects.count()) == before
    assert AuditEvent.objects.filter(action="container.create", result="invalid").exists()


def test_a_bad_value_of_a_declared_field_names_the_field(world, api_client):
    r = api_client("operator").post("/api/v1/containers", {"image": "busybox", "dns": ["not-an-ip"]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["fields"] == {"dns": ["DNS server: 'not-an-ip' is not an "
                                                                           "IP address"]}


def test_a_failed_jobs_error_is_an_api_error_at_its_field(world, api_client):
    job = Job.objects.create(kind="container.create", host=world.host, requested_by=world.users["operator"],
                             state="failed", error="user 'x' is not in /etc/passwd of image busybox:latest",
                             error_code="invalid", error_field="user")
    body = api_client("operator").get(f"/api/v1/jobs/{job.pk}").json()
    assert body["error_detail"] == {"code": "invalid", "message": job.error, "fields": {"user": [job.error]}}
    queued = Job.objects.create(kind="container.start", host=world.host, requested_by=world.users["operator"])
    assert api_client("operator").get(f"/api/v1/jobs/{queued.pk}").json()["error_detail"] is None
