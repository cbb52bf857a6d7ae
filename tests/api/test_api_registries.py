"""/api/v1/registries and the pull/push/build endpoints as non-superusers (DRF client with real tokens):
team A's credentials are invisible and unusable for team B; a secret is never given back, never in a job's
params, never in the audit log, never stored in clear."""

from __future__ import annotations

import json

import pytest

from containers.models import AuditEvent, Job, RegistryCredential

pytestmark = pytest.mark.django_db

SECRET = "team-a-Registry-S3cret!"


def _save(client, **body):
    return client.post("/api/v1/registries", {"registry": "registry.example:5000", "username": "bot",
                                              "password": SECRET, **body}, format="json")


def _nowhere(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def test_team_a_credential_is_invisible_and_unusable_for_team_b(world, api_client) -> None:
    admin, operator, outsider = api_client("admin"), api_client("operator"), api_client("outsider")
    saved = _save(admin, team=world.team_a.pk)
    assert saved.status_code == 201, saved.content
    cred = saved.json()
    assert cred["team"] == world.team_a.pk and "password" not in cred and "secret" not in cred
    listed = operator.get("/api/v1/registries")
    assert [c["id"] for c in listed.json()["results"]] == [cred["id"]]
    # team B's admin: not listed, 404 by id, and a pull naming it is refused as if it did not exist
    assert outsider.get("/api/v1/registries").json()["results"] == []
    assert outsider.get(f"/api/v1/registries/{cred['id']}").status_code == 404
    refused = outsider.post("/api/v1/images/pull", {"ref": "registry.example:5000/a/app:1", "team": world.team_b.pk,
                                                    "credential": cred["id"]}, format="json")
    assert refused.status_code == 404 and refused.json()["error"]["fields"].keys() == {"credential"}, refused.content
    assert outsider.delete(f"/api/v1/registries/{cred['id']}").status_code == 404
    # team A's operator pulls for team A: the job names the credential by id only
    pulled = operator.post("/api/v1/images/pull", {"ref": "registry.example:5000/a/app:1", "team": world.team_a.pk},
                           format="json")
    assert pulled.status_code == 202, pulled.content
    job = Job.objects.get(pk=pulled.json()["id"])
    assert job.params["credential_id"] == cred["id"] and job.params["local"] == "registry.example-5000/a/app:1"
    # and a personal pull by the same operator does not get the team's credential
    personal = operator.post("/api/v1/images/pull", {"ref": "registry.example:5000/a/app:2"}, format="json")
    assert Job.objects.get(pk=personal.json()["id"]).params["credential_id"] is None
    row = RegistryCredential.objects.get(pk=cred["id"])
    assert SECRET not in row.secret
    from containers import registry_secrets

    assert registry_secrets.decrypt(row.secret) == SECRET
    _nowhere(saved.content.decode(), listed.content.decode(), pulled.content.decode(),
             json.dumps(list(Job.objects.values("params", "result", "message"))),
             json.dumps(list(AuditEvent.objects.values("detail", "target_repr"))))


def test_who_may_save_and_remove_credentials(world, api_client) -> None:
    assert _save(api_client("operator"), team=world.team_a.pk).status_code == 403  # a team's needs admin
    assert _save(api_client("outsider"), team=world.team_a.pk).status_code == 404
    mine = _save(api_client("viewer"))  # anyone may keep their own
    assert mine.status_code == 201
    again = _save(api_client("viewer"), password="another-one")  # `login` again replaces it
    assert again.json()["id"] == mine.json()["id"] and RegistryCredential.objects.count() == 1
    assert api_client("admin").get(f"/api/v1/registries/{mine.json()['id']}").status_code == 404
    assert api_client("root").get("/api/v1/registries").json()["results"] == []  # secrets are their owners'
    assert api_client("viewer").delete(f"/api/v1/registries/{mine.json()['id']}").status_code == 204
    assert not RegistryCredential.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"registry": "", "username": "u", "password": "p"}, "registry"),
    ({"registry": "ghcr.io/org", "username": "u", "password": "p"}, "registry"),
    ({"registry": "ghcr.io", "username": "", "password": "p"}, "username"),
    ({"registry": "ghcr.io", "username": "u"}, "password"),
])
def test_bad_credentials_name_the_field(world, api_client, body, field) -> None:
    r = api_client("viewer").post("/api/v1/registries", body, format="json")
    assert r.status_code == 400 and field in r.json()["error"]["fields"], r.content


@pytest.mark.parametrize("body, field", [
    ({"ref": "Not A Ref"}, "ref"),
    ({"ref": "nginx", "platform": "linux/"}, "platform"),
    ({"ref": "nginx", "name": "bad name"}, "name"),
    ({"ref": "nginx", "credential": 999999}, "credential"),
])
def test_bad_pulls_name_the_field(world, api_client, body, field) -> None:
    r = api_client("owner").post("/api/v1/images/pull", body, format="json")
    assert r.status_code in (400, 404) and r.json()["error"]["fields"].keys() == {field}, r.content


def test_push_needs_the_operator_role_and_a_tag(world, api_client) -> None:
    url = f"/api/v1/images/{world.image_a.pk}/push"
    body = {"destination": "registry.example:5000/a/app:1"}
    assert api_client("outsider").post(url, body, format="json").status_code == 404
    assert api_client("viewer").post(url, body, format="json").status_code == 403
    bad = api_client("operator").post(url, {"destination": "registry.example:5000/a/app@sha256:" + "1" * 64},
                                      format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"].keys() == {"destination"}
    ok = api_client("operator").post(url, body, format="json")
    assert ok.status_code == 202 and ok.json()["params"]["destination"] == "registry.example:5000/a/app:1"


def test_build_requests_are_checked_before_a_job(world, api_client) -> None:
    client = api_client("owner")
    none = client.post("/api/v1/images/build", {"ref": "mine:1"}, format="multipart")
    assert none.status_code == 400 and none.json()["error"]["fields"].keys() == {"dockerfile"}
    bad = client.post("/api/v1/images/build", {"ref": "mine:1", "dockerfile": "RUN true\n"}, format="multipart")
    assert bad.status_code == 400 and "only ARG may come before the first FROM" in bad.json()["error"]["message"]
    args = client.post("/api/v1/images/build", {"ref": "mine:1", "dockerfile": "FROM busybox\n",
                                                "build_args": "[1]"}, format="multipart")
    assert args.status_code == 400 and args.json()["error"]["fields"].keys() == {"build_args"}
    ok = client.post("/api/v1/images/build", {"ref": "mine:1", "dockerfile": "FROM busybox\nRUN true\n",
                                              "build_args": '{"A": "1"}'}, format="multipart")
    assert ok.status_code == 202 and ok.json()["kind"] == "image.build", ok.content
    assert Job.objects.get(pk=ok.json()["id"]).params["build_args"] == {"A": "1"}
