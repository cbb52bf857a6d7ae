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
    Host,
    Image,
    Job,
    JoinToken,
    Network,
    RegistryCredential,
    Team,
    TeamLimits,
    TeamMembership,
    Volume,
)
from containers.transfer_files import uploads_dir
from tests.transfers import make_download, upload_of

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "operator", "admin", "outsider", "root", "owner")
VIEW = {"viewer": 200, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 200}
OPERATE = {"viewer": 403, "operator": 202, "admin": 202, "outsider": 404, "root": 202, "owner": 202}
ADMIN = {"viewer": 403, "operator": 403, "admin": 202, "outsider": 404, "root": 202, "owner": 202}
TEAM_VIEW = {"viewer": 200, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 404}
TEAM_ADMIN = {"viewer": 403, "operator": 403, "admin": 200, "outsider": 404, "root": 200, "owner": 404}
CRED = {"viewer": 404, "operator": 200, "admin": 200, "outsider": 404, "root": 404, "owner": 404}
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
    target: str | None = None  # its target: a key of `ids` ("web_a"), or "new:<type>:<name>" for a row it makes
    params: dict | None = None  # params the Job must carry (a subset)
    returns: str | None = None  # a GET of one object: the key of `ids` whose object the answer is
    effect: Any = None  # effect(ids, user) asserts that an allowed request without a Job did what it says
    lists: tuple[str, str] | None = None  # a list GET: (key of `ids`, view table) — the object listed iff visible


CASES = [
    Case("hosts", "get", "/api/v1/hosts", {r: 200 for r in ROLES}),
    Case("host", "get", "/api/v1/hosts/{host}", {r: 200 for r in ROLES}, returns="host"),
    Case("container", "get", "/api/v1/containers/{web_a}", VIEW, returns="web_a"),
    Case("image", "get", "/api/v1/images/{image_a}", VIEW, returns="image_a"),
    Case("base image", "get", "/api/v1/images/{base}", {r: 200 for r in ROLES}, returns="base"),
    Case("job", "get", "/api/v1/jobs/{job_a}", VIEW, returns="job_a"),
    Case("start", "post", "/api/v1/containers/{web_a}/start", OPERATE, state="exited", job_kind="container.start",
         target="web_a"),
    Case("stop", "post", "/api/v1/containers/{web_a}/stop", OPERATE, {"timeout": 1}, job_kind="container.stop",
         target="web_a", params={"timeout": 1}),
    Case("kill", "post", "/api/v1/containers/{web_a}/kill", OPERATE, {"signal": "SIGTERM"},
         job_kind="container.kill", target="web_a", params={"signal": "SIGTERM"}),
    Case("restart", "post", "/api/v1/containers/{web_a}/restart", OPERATE, job_kind="container.restart",
         target="web_a", params={"timeout": 10}),
    Case("pause", "post", "/api/v1/containers/{web_a}/pause", OPERATE, job_kind="container.pause", target="web_a"),
    Case("unpause", "post", "/api/v1/containers/{web_a}/unpause", OPERATE, state="paused",
         job_kind="container.unpause", target="web_a"),
    Case("export", "post", "/api/v1/containers/{web_a}/export", OPERATE, job_kind="container.export", target="web_a"),
    Case("commit", "post", "/api/v1/containers/{web_a}/commit", OPERATE, {"ref": "snap:1"},
         job_kind="container.commit", target="web_a", params={"ref": "snap:1"}),
    Case("move", "post", "/api/v1/containers/{web_a}/move", OPERATE, {"host": "{host_b}"}, job_kind="container.move",
         target="web_a", params={"to_host": "{host_b}", "copy": False}),
    Case("copy", "post", "/api/v1/containers/{web_a}/copy", OPERATE, {"host": "{host_b}"}, job_kind="container.copy",
         target="web_a", params={"to_host": "{host_b}", "copy": True}),
    Case("logs", "get", "/api/v1/containers/{web_a}/logs?tail=5", OPERATE, job_kind="container.logs",
         target="web_a", params={"tail": 5}),
    # the way in (containers/api/way_in.py): exec and files are an operator's, top and stats a viewer's
    Case("exec", "post", "/api/v1/containers/{web_a}/exec", OPERATE, {"command": ["sh", "-c", "true"]},
         job_kind="container.exec", target="web_a", params={"command": ["sh", "-c", "true"]}),
    Case("top", "get", "/api/v1/containers/{web_a}/top", _with(VIEW, 202), job_kind="container.top",
         target="web_a"),
    Case("stats", "get", "/api/v1/containers/{web_a}/stats", VIEW),
    Case("host stats", "get", "/api/v1/hosts/{host}/stats", {r: 200 for r in ROLES}),
    Case("files", "get", "/api/v1/containers/{web_a}/files?path=/etc", OPERATE, job_kind="container.files",
         target="web_a", params={"path": "/etc"}),
    Case("archive get", "get", "/api/v1/containers/{web_a}/archive?path=/etc", OPERATE,
         job_kind="container.archive_get", target="web_a", params={"path": "/etc"}),
    Case("remove", "post", "/api/v1/containers/{web_a}/remove", ADMIN, {"force": True}, job_kind="container.remove",
         target="web_a", params={"force": True}),
    Case("delete", "delete", "/api/v1/containers/{web_a}?force=true", ADMIN, job_kind="container.remove",
         target="web_a", params={"force": True}),
    Case("create", "post", "/api/v1/containers", OPERATE, {"image": "app-a:1", "name": "made"},
         job_kind="container.create", target="new:container:made", params={"name": "made"}),
    Case("save", "post", "/api/v1/images/{image_a}/save", OPERATE, {"format": "oci-archive"}, job_kind="image.save",
         target="image_a", params={"format": "oci-archive"}),
    Case("tag", "post", "/api/v1/images/{image_a}/tag", ADMIN, {"ref": "app-a:2"}, job_kind="image.tag",
         target="image_a", params={"ref": "app-a:2"}),
    Case("image delete", "delete", "/api/v1/images/{image_a}?force=1", ADMIN, job_kind="image.remove",
         target="image_a", params={"force": True}),
    Case("volume", "get", "/api/v1/volumes/{volume_a}", VIEW, returns="volume_a"),
    Case("network", "get", "/api/v1/networks/{network_a}", VIEW, returns="network_a"),
    Case("network delete", "delete", "/api/v1/networks/{network_a}?force=1", ADMIN, job_kind="network.remove",
         target="network_a", params={"force": True}),
    Case("network create", "post", "/api/v1/networks", {r: 202 for r in ROLES}, {"name": "net1", "host": "{host}"},
         job_kind="network.create", target="new:network:net1", params={"name": "net1"}),
    Case("network connect", "post", "/api/v1/networks/{network_a}/connect", OPERATE, {"container": "{db_a}"},
         job_kind="network.connect", target="network_a", params={"container": "{db_a_engine}", "aliases": ["db-a"]}),
    Case("network disconnect", "post", "/api/v1/networks/{network_a}/disconnect", OPERATE,
         {"container": "{web_a}"}, job_kind="network.disconnect", target="network_a",
         params={"container": "{web_a_engine}"}),
    Case("volume delete", "delete", "/api/v1/volumes/{volume_a}", ADMIN, job_kind="volume.remove", target="volume_a",
         params={"name": "data", "engine_id": "{volume_a_engine}"}),
    Case("volume create", "post", "/api/v1/volumes", {r: 202 for r in ROLES}, {"name": "data", "host": "{host}"},
         job_kind="volume.create", target="new:volume:data", params={"name": "data"}),
    Case("team volume create", "post", "/api/v1/volumes", OPERATE | {"owner": 404},
         {"name": "cache", "host": "{host}", "team": "{team_a}"}, job_kind="volume.create",
         target="new:volume:cache", params={"name": "cache"}),
    Case("share", "post", "/api/v1/images/{image_a}/share", _with(ADMIN, 200), {"team": None, "shared": False},
         effect=lambda ids, user: _row(Image, ids["image_a"], "team_id", "shared") == (None, False)),
    Case("download", "get", "/api/v1/jobs/{export_job}/download", _with(OPERATE, 200)),
    Case("cancel", "post", "/api/v1/jobs/{job_a}/cancel",
         {"viewer": 403, "operator": 403, "admin": 403, "outsider": 404, "root": 200, "owner": 200},
         effect=lambda ids, user: _row(Job, ids["job_a"], "state") == ("cancelled",)),
    Case("team", "get", "/api/v1/teams/{team_a}", TEAM_VIEW, returns="team_a"),
    Case("members", "get", "/api/v1/teams/{team_a}/members", TEAM_VIEW),
    Case("team limits", "get", "/api/v1/teams/{team_a}/limits", TEAM_VIEW),
    Case("set team limits", "patch", "/api/v1/teams/{team_a}/limits", SUPERUSER, {"max_pids_limit": 100},
         effect=lambda ids, user: TeamLimits.objects.get(team_id=ids["team_a"]).max_pids_limit == 100),
    Case("replace team limits", "put", "/api/v1/teams/{team_a}/limits", SUPERUSER, {"max_pids_limit": 100},
         effect=lambda ids, user: TeamLimits.objects.get(team_id=ids["team_a"]).max_pids_limit == 100),
    Case("add member", "post", "/api/v1/teams/{team_a}/members", _with(TEAM_ADMIN, 201),
         {"username": "newbie", "role": "viewer"},
         effect=lambda ids, user: list(TeamMembership.objects.filter(team_id=ids["team_a"], user__username="newbie")
                                       .values_list("role", flat=True)) == ["viewer"]),
    Case("member role", "patch", "/api/v1/teams/{team_a}/members/{viewer}", TEAM_ADMIN, {"role": "operator"},
         effect=lambda ids, user: list(TeamMembership.objects.filter(team_id=ids["team_a"], user_id=ids["viewer"])
                                       .values_list("role", flat=True)) == ["operator"]),
    Case("drop member", "delete", "/api/v1/teams/{team_a}/members/{viewer}", _with(TEAM_ADMIN, 204),
         effect=lambda ids, user: not TeamMembership.objects.filter(team_id=ids["team_a"],
                                                                    user_id=ids["viewer"]).exists()),
    Case("create team", "post", "/api/v1/teams", {r: 201 if r == "root" else 403 for r in ROLES}, {"name": "t-c"},
         effect=lambda ids, user: Team.objects.filter(name="t-c").count() == 1),
    Case("audit event", "get", "/api/v1/audit/{audit_a}",
         {"viewer": 404, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 404}, returns="audit_a"),
    Case("token", "get", "/api/v1/tokens/{owner_token}", {r: 200 if r == "owner" else 404 for r in ROLES},
         returns="owner_token"),
    Case("revoke token", "delete", "/api/v1/tokens/{owner_token}", {r: 200 if r == "owner" else 404 for r in ROLES},
         effect=lambda ids, user: _row(ApiToken, ids["owner_token"], "revoked") != (None,)),
    # registries (issue 15): a team's saved credential is its operators' and admins' only (not even root's)
    Case("push", "post", "/api/v1/images/{image_a}/push", OPERATE, {"destination": "reg.example:5000/a/app:1"},
         job_kind="image.push", target="image_a", params={"destination": "reg.example:5000/a/app:1"}),
    Case("team pull", "post", "/api/v1/images/pull", OPERATE | {"owner": 404},
         {"ref": "reg.example:5000/a/app:9", "host": "{host}", "team": "{team_a}"}, job_kind="image.pull",
         target="none:image", params={"local": "reg.example-5000/a/app:9"}),
    Case("team build", "post", "/api/v1/images/build", OPERATE | {"owner": 404},
         {"ref": "built:1", "host": "{host}", "team": "{team_a}", "dockerfile": "FROM busybox\n"},
         job_kind="image.build", target="none:image", params={"ref": "built:1"}),
    Case("registry", "get", "/api/v1/registries/{cred_a}", CRED, returns="cred_a"),
    Case("save registry", "post", "/api/v1/registries", {r: 201 for r in ROLES},
         {"registry": "ghcr.io", "username": "u", "password": "p"},
         effect=lambda ids, user: RegistryCredential.objects.filter(owner=user, team__isnull=True,
                                                                    registry="ghcr.io").count() == 1),
    Case("drop registry", "delete", "/api/v1/registries/{cred_a}", _with(CRED | {"operator": 403}, 204),
         effect=lambda ids, user: not RegistryCredential.objects.filter(pk=ids["cred_a"]).exists()),
    Case("registries", "get", "/api/v1/registries", {r: 200 for r in ROLES}, lists=("cred_a", "CRED")),
    # the lists: every role may ask; an object is listed exactly when that role may see it
    Case("containers", "get", "/api/v1/containers", {r: 200 for r in ROLES}, lists=("web_a", "VIEW")),
    Case("images", "get", "/api/v1/images", {r: 200 for r in ROLES}, lists=("image_a", "VIEW")),
    Case("jobs", "get", "/api/v1/jobs", {r: 200 for r in ROLES}, lists=("job_a", "VIEW")),
    Case("volumes", "get", "/api/v1/volumes", {r: 200 for r in ROLES}, lists=("volume_a", "VIEW")),
    Case("networks", "get", "/api/v1/networks", {r: 200 for r in ROLES}, lists=("network_a", "VIEW")),
    Case("teams", "get", "/api/v1/teams", {r: 200 for r in ROLES}, lists=("team_a", "TEAM_VIEW")),
    Case("tokens", "get", "/api/v1/tokens", {r: 200 for r in ROLES}, lists=("owner_token", "OWNER")),
    Case("audit", "get", "/api/v1/audit", {r: 200 for r in ROLES}, lists=("audit_a", "AUDIT")),
    # hosts (issue 18): labels, cordon, drain and join tokens are a superuser's; others see hosts, not tokens
    Case("host update", "patch", "/api/v1/hosts/{host}", {r: 200 if r == "root" else 403 for r in ROLES},
         {"labels": ["ssd", "zone=a"], "cordoned": True},
         effect=lambda ids, user: _row(Host, ids["host"], "labels", "cordoned") == ({"ssd": "", "zone": "a"}, True)),
    Case("drain host", "post", "/api/v1/hosts/{host}/drain", {r: 200 if r == "root" else 403 for r in ROLES},
         effect=lambda ids, user: _row(Host, ids["host"], "cordoned", "draining") == (True, True)),
    Case("join tokens", "get", "/api/v1/hosts/join-tokens", {r: 200 if r == "root" else 403 for r in ROLES}),
    Case("join token", "get", "/api/v1/hosts/join-tokens/{join_token}", {r: 200 if r == "root" else 404 for r in ROLES},
         returns="join_token"),
    Case("make join token", "post", "/api/v1/hosts/join-tokens", {r: 201 if r == "root" else 403 for r in ROLES},
         {"name": "rack-2"}, effect=lambda ids, user: JoinToken.objects.filter(name="rack-2").count() == 1),
    Case("revoke join token", "delete", "/api/v1/hosts/join-tokens/{join_token}",
         {r: 200 if r == "root" else 404 for r in ROLES},
         effect=lambda ids, user: _row(JoinToken, ids["join_token"], "revoked") != (None,)),
    Case("make token", "post", "/api/v1/tokens", {r: 201 for r in ROLES}, {"name": "ci"},
         effect=lambda ids, user: list(ApiToken.objects.filter(name="ci").values_list("user_id", flat=True))
         == [user.pk]),
]
LIST_VISIBLE = {"VIEW": VIEW, "TEAM_VIEW": TEAM_VIEW, "CRED": CRED, "OWNER": {r: 200 if r == "owner" else 404 for r in ROLES},
                "AUDIT": {"viewer": 404, "operator": 200, "admin": 200, "outsider": 404, "root": 200, "owner": 404}}


def _row(model, pk: int, *fields: str) -> tuple:
    return tuple(model.objects.filter(pk=pk).values_list(*fields).get())


def snapshot() -> dict[str, list]:
    """Everything a request could change (token last_used aside: using a token updates it)."""
    return {
        "containers": list(Container.objects.order_by("pk").values()),
        "images": list(Image.objects.order_by("pk").values()),
        "volumes": list(Volume.objects.order_by("pk").values()),
        "networks": list(Network.objects.order_by("pk").values()),
        "network_members": list(Network.containers.through.objects.order_by("pk").values()),
        "jobs": list(Job.objects.order_by("pk").values()),
        "teams": list(Team.objects.order_by("pk").values()),
        "members": list(TeamMembership.objects.order_by("pk").values()),
        "team_limits": list(TeamLimits.objects.order_by("pk").values()),
        "tokens": list(ApiToken.objects.order_by("pk").values("pk", "name", "key_hash", "revoked")),
        "hosts": list(Host.objects.order_by("pk").values("pk", "labels", "cordoned", "draining", "join_token")),
        "join_tokens": list(JoinToken.objects.order_by("pk").values("pk", "name", "revoked")),
    }


@pytest.fixture
def ids(world, tmp_path):
    from django.contrib.auth import get_user_model

    from containers import audit, join
    from containers.api.auth import create_token

    get_user_model().objects.create_user("newbie", password="pw-newbie-123")
    host = world.host
    host.facts = {"state_root": str(tmp_path)}
    host.save()
    job_a = Job.objects.create(kind="container.start", host=host, target_type="container",
                               target_id=str(world.web_a.pk), requested_by=world.users["owner"])
    export_job = Job.objects.create(
        kind="container.export", host=host, target_type="container", target_id=str(world.web_a.pk),
        requested_by=world.users["owner"], state="succeeded",
        result={"size": 2048, "filename": "web-a.tar", "content_type": "application/x-tar"})
    make_download(export_job, b"t" * 2048)  # as its worker pushed it to the web side
    event = audit.record(None, world.users["operator"], "container.stop", world.web_a, "ok")
    token, _ = create_token(world.users["owner"], "owner's")
    join_token, _ = join.make_token(world.users["root"], "rack-1")
    volume_a = Volume.objects.create(name="data", host=host, owner=world.users["owner"], team=world.team_a)
    cred_a = RegistryCredential.objects.create(registry="reg.example:5000", username="bot", team=world.team_a,
                                               owner=world.users["admin"], secret="not-a-real-token")
    network_a = Network.objects.create(name="app", namespace=world.web_a.namespace, host=host,
                                       owner=world.users["owner"], team=world.team_a)
    network_a.containers.add(world.web_a)
    db_a = Container.objects.create(name="db-a", host=host, image=world.image_a, image_ref="app-a:1",
                                    owner=world.users["owner"], team=world.team_a, state="running")
    host_b = Host.objects.create(name="matrix-b")  # where move and copy send web-a
    return {"host_b": host_b.pk, "network_a": network_a.pk, "db_a": db_a.pk, "db_a_engine": db_a.engine_id, "web_a_engine": world.web_a.engine_id,
            "host": host.pk, "web_a": world.web_a.pk, "image_a": world.image_a.pk, "base": world.base.pk,
            "job_a": job_a.pk, "export_job": export_job.pk, "team_a": world.team_a.pk,
            "viewer": world.users["viewer"].pk, "audit_a": event.pk, "owner_token": token.pk, "join_token": join_token.pk,
            "volume_a": volume_a.pk, "volume_a_engine": volume_a.engine_id, "cred_a": cred_a.pk}


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
    user = world.users[role]
    if case.job_kind:
        made = list(Job.objects.exclude(pk__in=[j["id"] for j in before["jobs"]]))
        assert [j.kind for j in made] == [case.job_kind]
        job = made[0]
        assert (job.host_id, job.requested_by_id) == (ids["host"], user.pk)
        assert (job.target_type, job.target_id) == _target(case.target, ids), (job.target_type, job.target_id)
        if case.params is None:  # an action without input carries none
            assert job.params == {}, job.params
        else:
            want = _fill(case.params, ids)
            assert {k: job.params.get(k) for k in want} == want, job.params
        answer = response.json()
        assert (answer["job"]["id"] if "job" in answer else answer["id"]) == job.pk
        assert AuditEvent.objects.filter(action=case.job_kind, result="ok").count() == ok_before + 1
    elif case.method == "get":
        assert snapshot() == before, "a read changed something"
        if case.returns:
            assert response.json()["id"] == ids[case.returns]
        if case.lists:
            key, table = case.lists
            listed = [item["id"] for item in _items(response.json())]
            assert (ids[key] in listed) == (LIST_VISIBLE[table][role] == 200), (role, listed)
    else:
        assert case.effect is not None, f"{case.name}: say what an allowed request does"
        assert case.effect(ids, user), f"{case.name} answered {response.status_code} but did not do what it says"
        assert AuditEvent.objects.count() > audit_before


def _target(target: str | None, ids: dict) -> tuple[str, str]:
    """The (target_type, target_id) a job case must have."""
    assert target, "a job case names its target"
    if target == "none:image":  # a pull or build: the image row is made by the job
        return "image", ""
    if target.startswith("new:"):
        _, kind, name = target.split(":")
        model = {"container": Container, "volume": Volume, "network": Network}[kind]
        return kind, str(model.objects.filter(name=name).latest("pk").pk)  # the row this request made
    kind = {"web_a": "container", "image_a": "image", "volume_a": "volume", "network_a": "network"}[target]
    return kind, str(ids[target])


def _items(answer) -> list[dict]:
    return answer["results"] if isinstance(answer, dict) else answer


# Uploads (a raw tar body) into team A: an operator may, a viewer may not, others do not see the team.
UPLOADS = [("import", "/api/v1/images/import?ref=up:1&team={team_a}", "image.import", {"ref": "up:1"}),
           ("load", "/api/v1/images/load?team={team_a}", "image.load", {})]
UPLOAD_EXPECT = OPERATE | {"owner": 404}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("upload", UPLOADS, ids=lambda u: u[0])
def test_upload_matrix(world, api_client, ids, settings, tmp_path, upload, role: str):
    import io
    import tarfile

    settings.BERTH_TRANSFER_DIR = tmp_path / "web-root"
    name, path, kind, params = upload
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    client = api_client(role)
    before = snapshot()
    response = client.generic("POST", path.format(**ids), buf.getvalue(), content_type="application/x-tar")
    expected = UPLOAD_EXPECT[role]
    assert response.status_code == expected, (role, name, response.content[:300])
    uploads = uploads_dir()
    if expected >= 400:
        assert snapshot() == before
        assert not uploads.exists() or list(uploads.iterdir()) == []
        return
    made = list(Job.objects.exclude(pk__in=[j["id"] for j in before["jobs"]]))
    assert [j.kind for j in made] == [kind] and response.json()["id"] == made[0].pk
    job = made[0]
    assert (job.host_id, job.requested_by_id, job.params["team_id"]) == (ids["host"], world.users[role].pk,
                                                                        ids["team_a"])
    assert {k: job.params.get(k) for k in params} == params
    assert upload_of(job).read_bytes() == buf.getvalue()


def _operations_under_test() -> set[tuple[str, str]]:
    """(method, schema path) of every case of this module."""
    ops = set()
    for method, path in [(c.method, c.path) for c in CASES] + [("post", u[1]) for u in UPLOADS]:
        template = path.split("?")[0]
        for key in ("host", "web_a", "image_a", "base", "job_a", "export_job", "team_a", "audit_a",
                    "owner_token", "volume_a", "network_a", "cred_a", "join_token"):
            template = template.replace("{" + key + "}", "{id}")
        ops.add((method, template.replace("{viewer}", "{user_id}")))
    from tests.api.test_api_way_in import COVERED  # the tar upload has its own matrix there

    return ops | COVERED


def test_every_operation_is_in_the_matrix(world):
    """Every operation of the schema is a case of this module: nothing is taken on trust from a list."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    ops = {(m, p) for p, item in schema["paths"].items() for m in item if m in ("get", "post", "put", "patch",
                                                                               "delete")}
    covered = _operations_under_test()
    assert ops - covered == set(), "operations without a case"
    assert covered - ops == set(), "cases for operations the schema does not have"
