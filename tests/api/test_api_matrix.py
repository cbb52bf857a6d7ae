"""Every endpoint for every role: allowed requests succeed (and do what they say), refused ones answer
403/404 and change nothing — no row touched, no Job made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from containers.models import (
    ApiToken,
    AuditEvent,
    Container,
    Image,
    Job,
    Team,
    TeamLimits,
    TeamMembership,
    Volume,
)

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "operator", "admin", "outsider", "root", "owner")
VIEW = {"viewer": 200, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 200}
OPERATE = {"viewer": 403, "operator": 202, "admin": 202, "outsider": 404, "root": 202, "owner": 202}
ADMIN = {"viewer": 403, "operator": 403, "admin": 202, "outsider": 404, "root": 202, "owner": 202}
TEAM_VIEW = {"viewer": 200, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 404}
TEAM_ADMIN = {"viewer": 403, "operator": 403, "admin": 200, "outsider": 404, "root": 200, "owner": 404}
SUPERUSER = {"viewer": 403, "operator": 403, "admin": 403, "outsider": 404, "root": 200, "owner": 404}


def _with(table: dict[str, int], status: int) -> dict[str, int]:
    return {role: status if code in (200, 201, 202, 204) else code for role, code in table.items()}


@dataclass
class Case:
    name: str
    method: str
    path: str  # formatted with the world's ids
    expect: dict[str, int]
    body: Any = None
    state: str | None = None  # web-a's state before the request
    job_kind: str | None = None  # the Job an allowed request makes


CASES = [
    Case("hosts", "get", "/api/v1/hosts", {r: 200 for r in ROLES}),
    Case("host", "get", "/api/v1/hosts/{host}", {r: 200 for r in ROLES}),
    Case("container", "get", "/api/v1/containers/{web_a}", VIEW),
    Case("image", "get", "/api/v1/images/{image_a}", VIEW),
    Case("base image", "get", "/api/v1/images/{base}", {r: 200 for r in ROLES}),
    Case("job", "get", "/api/v1/jobs/{job_a}", VIEW),
    Case("start", "post", "/api/v1/containers/{web_a}/start", OPERATE, state="exited", job_kind="container.start"),
    Case("stop", "post", "/api/v1/containers/{web_a}/stop", OPERATE, {"timeout": 1}, job_kind="container.stop"),
    Case("kill", "post", "/api/v1/containers/{web_a}/kill", OPERATE, {"signal": "SIGTERM"},
         job_kind="container.kill"),
    Case("restart", "post", "/api/v1/containers/{web_a}/restart", OPERATE, job_kind="container.restart"),
    Case("pause", "post", "/api/v1/containers/{web_a}/pause", OPERATE, job_kind="container.pause"),
    Case("unpause", "post", "/api/v1/containers/{web_a}/unpause", OPERATE, state="paused",
         job_kind="container.unpause"),
    Case("export", "post", "/api/v1/containers/{web_a}/export", OPERATE, job_kind="container.export"),
    Case("commit", "post", "/api/v1/containers/{web_a}/commit", OPERATE, {"ref": "snap:1"},
         job_kind="container.commit"),
    Case("logs", "get", "/api/v1/containers/{web_a}/logs?tail=5", OPERATE, job_kind="container.logs"),
    Case("remove", "post", "/api/v1/containers/{web_a}/remove", ADMIN, {"force": True}, job_kind="container.remove"),
    Case("delete", "delete", "/api/v1/containers/{web_a}?force=true", ADMIN, job_kind="container.remove"),
    Case("create", "post", "/api/v1/containers", OPERATE, {"image": "app-a:1", "name": "made"},
         job_kind="container.create"),
    Case("save", "post", "/api/v1/images/{image_a}/save", OPERATE, {"format": "oci-archive"}, job_kind="image.save"),
    Case("tag", "post", "/api/v1/images/{image_a}/tag", ADMIN, {"ref": "app-a:2"}, job_kind="image.tag"),
    Case("image delete", "delete", "/api/v1/images/{image_a}?force=1", ADMIN, job_kind="image.remove"),
    Case("volume", "get", "/api/v1/volumes/{volume_a}", VIEW),
    Case("volume delete", "delete", "/api/v1/volumes/{volume_a}", ADMIN, job_kind="volume.remove"),
    Case("volume create", "post", "/api/v1/volumes", {r: 202 for r in ROLES}, {"name": "data", "host": "{host}"},
         job_kind="volume.create"),
    Case("team volume create", "post", "/api/v1/volumes", OPERATE | {"owner": 404},
         {"name": "cache", "host": "{host}", "team": "{team_a}"}, job_kind="volume.create"),
    Case("share", "post", "/api/v1/images/{image_a}/share", _with(ADMIN, 200), {"team": None, "shared": False}),
    Case("download", "get", "/api/v1/jobs/{export_job}/download", _with(OPERATE, 200)),
    Case("cancel", "post", "/api/v1/jobs/{job_a}/cancel",
         {"viewer": 403, "operator": 403, "admin": 403, "outsider": 404, "root": 200, "owner": 200}),
    Case("team", "get", "/api/v1/teams/{team_a}", TEAM_VIEW),
    Case("members", "get", "/api/v1/teams/{team_a}/members", TEAM_VIEW),
    Case("team limits", "get", "/api/v1/teams/{team_a}/limits", TEAM_VIEW),
    Case("set team limits", "patch", "/api/v1/teams/{team_a}/limits", SUPERUSER, {"max_pids_limit": 100}),
    Case("replace team limits", "put", "/api/v1/teams/{team_a}/limits", SUPERUSER, {"max_pids_limit": 100}),
    Case("add member", "post", "/api/v1/teams/{team_a}/members", _with(TEAM_ADMIN, 201),
         {"username": "newbie", "role": "viewer"}),
    Case("member role", "patch", "/api/v1/teams/{team_a}/members/{viewer}", TEAM_ADMIN, {"role": "operator"}),
    Case("drop member", "delete", "/api/v1/teams/{team_a}/members/{viewer}", _with(TEAM_ADMIN, 204)),
    Case("create team", "post", "/api/v1/teams", {r: 201 if r == "root" else 403 for r in ROLES}, {"name": "t-c"}),
    Case("audit event", "get", "/api/v1/audit/{audit_a}",
         {"viewer": 404, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 404}),
    Case("token", "get", "/api/v1/tokens/{owner_token}", {r: 200 if r == "owner" else 404 for r in ROLES}),
    Case("revoke token", "delete", "/api/v1/tokens/{owner_token}", {r: 200 if r == "owner" else 404 for r in ROLES}),
]


def snapshot() -> dict[str, list]:
    """Everything a request could change (token last_used aside: using a token updates it)."""
    return {
        "containers": list(Container.objects.order_by("pk").values()),
        "images": list(Image.objects.order_by("pk").values()),
        "volumes": list(Volume.objects.order_by("pk").values()),
        "jobs": list(Job.objects.order_by("pk").values()),
        "teams": list(Team.objects.order_by("pk").values()),
        "members": list(TeamMembership.objects.order_by("pk").values()),
        "team_limits": list(TeamLimits.objects.order_by("pk").values()),
        "tokens": list(ApiToken.objects.order_by("pk").values("pk", "name", "key_hash", "revoked")),
    }


@pytest.fixture
def ids(world, tmp_path):
    from django.contrib.auth import get_user_model

    from containers import audit
    from containers.api.auth import create_token

    get_user_model().objects.create_user("newbie", password="pw-newbie-123")
    host = world.host
    host.facts = {"state_root": str(tmp_path)}
    host.save()
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "e.tar").write_bytes(b"t" * 2048)
    job_a = Job.objects.create(kind="container.start", host=host, target_type="container",
                               target_id=str(world.web_a.pk), requested_by=world.users["owner"])
    export_job = Job.objects.create(
        kind="container.export", host=host, target_type="container", target_id=str(world.web_a.pk),
        requested_by=world.users["owner"], state="succeeded",
        result={"path": str(tmp_path / "exports" / "e.tar"), "size": 2048, "filename": "web-a.tar",
                "content_type": "application/x-tar"})
    event = audit.record(None, world.users["operator"], "container.stop", world.web_a, "ok")
    token, _ = create_token(world.users["owner"], "owner's")
    volume_a = Volume.objects.create(name="data", host=host, owner=world.users["owner"], team=world.team_a)
    return {"host": host.pk, "web_a": world.web_a.pk, "image_a": world.image_a.pk, "base": world.base.pk,
            "job_a": job_a.pk, "export_job": export_job.pk, "team_a": world.team_a.pk,
            "viewer": world.users["viewer"].pk, "audit_a": event.pk, "owner_token": token.pk,
            "volume_a": volume_a.pk}


def _fill(value, ids):
    if isinstance(value, str):
        text = value.format(**ids)
        return int(text) if text.isdigit() and value.startswith("{") else text
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_role_matrix(world, api_client, ids, case: Case, role: str):
    if case.state:
        Container.objects.filter(pk=world.web_a.pk).update(state=case.state)
    client = api_client(role)
    before = snapshot()
    audit_before = AuditEvent.objects.count()
    ok_before = AuditEvent.objects.filter(action=case.job_kind or "-", result="ok").count()
    body = _fill(case.body, ids) if case.body is not None else None
    response = getattr(client, case.method)(case.path.format(**ids), body, format="json")
    expected = case.expect[role]
    assert response.status_code == expected, (role, case.name, response.content[:300])
    if case.method == "get" and case.name == "download" and expected == 200:
        assert b"".join(response.streaming_content) == b"t" * 2048
        assert response["Content-Length"] == "2048" and response["Content-Type"] == "application/x-tar"
    if expected >= 400:
        body = response.json()["error"]
        assert body["code"] in {403: ["forbidden"], 404: ["not_found", "no_such_image", "no_such_team"]}[expected]
        assert snapshot() == before, "a refused request changed something"
        if case.method != "get":
            assert AuditEvent.objects.filter(result="denied").count() > 0
        return
    if case.job_kind:
        made = Job.objects.exclude(pk__in=[j["id"] for j in before["jobs"]])
        assert [j.kind for j in made] == [case.job_kind]
        assert response.json()["job" if case.name.endswith("create") else "id"] is not None
        assert AuditEvent.objects.filter(action=case.job_kind, result="ok").count() == ok_before + 1
    elif case.method == "get":
        assert snapshot() == before, "a read changed something"
    else:
        assert snapshot() != before  # share/cancel/members/teams/tokens did change what they say
        assert AuditEvent.objects.count() > audit_before


def test_every_operation_is_in_the_matrix(world):
    """The matrix covers every path of the schema (or the isolation/upload tests do, named here)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    covered = {c.path.split("?")[0].replace("{", "").replace("}", "") for c in CASES}
    covered_ops = set()
    for case in CASES:
        template = case.path.split("?")[0]
        for key in ("host", "web_a", "image_a", "base", "job_a", "export_job", "team_a", "audit_a",
                    "owner_token", "volume_a"):
            template = template.replace("{" + key + "}", "{id}")
        template = template.replace("{viewer}", "{user_id}")
        covered_ops.add((case.method, template))
    elsewhere = {("post", "/api/v1/images/import"), ("post", "/api/v1/images/load"), ("get", "/api/v1/containers"),
                 ("get", "/api/v1/images"), ("get", "/api/v1/jobs"), ("get", "/api/v1/teams"),
                 ("get", "/api/v1/tokens"), ("post", "/api/v1/tokens"), ("get", "/api/v1/audit"), ("get", "/api/v1/volumes")}
    missing = [(m, p) for p, ops in schema["paths"].items() for m in ops
               if (m, p) not in covered_ops | elsewhere]
    assert covered and not missing, missing
