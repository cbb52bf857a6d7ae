"""containers/permissions.py: the role model every surface uses, and containers/audit.py."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from containers import audit, events, permissions
from containers.models import AuditEvent, Job, TeamMembership

pytestmark = pytest.mark.django_db

OPERATOR_ACTIONS = ["container.start", "container.stop", "container.kill", "container.restart",
                    "container.pause", "container.unpause", "container.logs", "container.exec",
                    "container.export", "container.commit"]
ADMIN_ACTIONS = ["container.remove"]


def test_container_actions_by_role(world):
    u, c = world.users, world.web_a
    for action in ["view", *OPERATOR_ACTIONS, *ADMIN_ACTIONS]:
        assert permissions.can(u["owner"], action, c), action
        assert permissions.can(u["root"], action, c), action
        assert permissions.can(u["admin"], action, c), action
        assert not permissions.can(u["outsider"], action, c), action
        assert permissions.can(u["viewer"], action, c) == (action == "view"), action
        assert permissions.can(u["operator"], action, c) == (action not in ADMIN_ACTIONS), action
    assert not permissions.can(AnonymousUser(), "view", c)
    assert not permissions.can(u["admin"], "no.such.action", c)


def test_check_distinguishes_not_visible_from_forbidden(world):
    u = world.users
    with pytest.raises(permissions.NotVisible):
        permissions.check(u["outsider"], "container.start", world.web_a)
    with pytest.raises(permissions.Forbidden):
        permissions.check(u["viewer"], "container.start", world.web_a)
    permissions.check(u["operator"], "container.start", world.web_a)
    with pytest.raises(permissions.NotVisible):
        permissions.check(u["owner"], "view", None)


def test_visible_querysets(world):
    u = world.users
    assert set(permissions.visible_containers(u["viewer"])) == {world.web_a}
    assert set(permissions.visible_containers(u["outsider"])) == {world.web_b}
    assert set(permissions.visible_containers(u["owner"])) == {world.web_a}
    assert set(permissions.visible_containers(u["root"])) == {world.web_a, world.web_b}
    assert not permissions.visible_containers(AnonymousUser()).exists()
    assert set(permissions.visible_images(u["viewer"])) == {world.base, world.image_a}
    assert set(permissions.visible_images(u["outsider"])) == {world.base, world.image_b}
    assert list(permissions.visible_hosts(u["outsider"])) == [world.host]
    assert not permissions.visible_hosts(AnonymousUser()).exists()
    assert set(permissions.visible_teams(u["viewer"])) == {world.team_a}
    assert set(permissions.visible_teams(u["owner"])) == set()


def test_shared_base_image_is_usable_but_not_removable(world):
    u = world.users
    for name in ("viewer", "outsider", "owner"):
        assert permissions.can(u[name], "image.use", world.base)
        assert not permissions.can(u[name], "image.remove", world.base)
        assert not permissions.can(u[name], "image.share", world.base)
    assert not permissions.can(u["viewer"], "image.use", world.image_a)
    assert permissions.can(u["operator"], "image.use", world.image_a)
    assert permissions.can(u["admin"], "image.tag", world.image_a)
    assert not permissions.can(u["operator"], "image.tag", world.image_a)


def test_membership_change_takes_effect(world):
    viewer = world.users["viewer"]
    assert permissions.can(viewer, "view", world.web_a)
    TeamMembership.objects.filter(user=viewer).delete()
    permissions.forget_roles(viewer)
    assert not permissions.can(viewer, "view", world.web_a)


def test_jobs_visibility_follows_targets(world):
    u = world.users
    job_a = Job.objects.create(kind="container.start", host=world.host, target_type="container",
                               target_id=str(world.web_a.pk), requested_by=u["owner"])
    job_b = Job.objects.create(kind="container.start", host=world.host, target_type="container",
                               target_id=str(world.web_b.pk), requested_by=u["outsider"])
    base_job = Job.objects.create(kind="image.save", host=world.host, target_type="image",
                                  target_id=str(world.base.pk), requested_by=u["outsider"])
    assert set(permissions.visible_jobs(u["viewer"])) == {job_a}
    assert set(permissions.visible_jobs(u["outsider"])) == {job_b, base_job}
    assert set(permissions.visible_jobs(u["owner"])) == {job_a}
    assert permissions.can(u["viewer"], "view", job_a) and not permissions.can(u["viewer"], "view", job_b)
    assert not permissions.can(u["owner"], "view", base_job)  # someone else's save of a shared image


def test_event_visible(world):
    u = world.users
    c_event = events.container_event(world.web_a)
    assert events.visible_to(u["viewer"], c_event)
    assert events.visible_to(u["owner"], c_event)
    assert not events.visible_to(u["outsider"], c_event)
    job = Job.objects.create(kind="container.stop", host=world.host, target_type="container",
                             target_id=str(world.web_a.pk), requested_by=u["root"])
    j_event = events.job_event(job)
    assert events.visible_to(u["viewer"], j_event) and events.visible_to(u["owner"], j_event)
    assert not events.visible_to(u["outsider"], j_event)
    assert events.visible_to(u["outsider"], {"type": "host", "id": 1})
    assert not events.visible_to(AnonymousUser(), {"type": "host", "id": 1})


def test_visible_audit(world):
    u = world.users
    mine = audit.record(None, u["viewer"], "container.start", world.web_a, "denied")
    other = audit.record(None, u["operator"], "container.start", world.web_a, "ok")
    b = audit.record(None, u["outsider"], "container.stop", world.web_b, "ok")
    assert set(permissions.visible_audit(u["admin"])) == {mine, other}
    assert set(permissions.visible_audit(u["viewer"])) == {mine}
    assert set(permissions.visible_audit(u["outsider"])) == {b}
    assert set(permissions.visible_audit(u["root"])) == {mine, other, b}


def test_audit_record_fields(world):
    request = RequestFactory().post("/api/v1/containers/1/start", REMOTE_ADDR="10.1.2.3")
    event = audit.record(request, world.users["operator"], "container.start", world.web_a, "ok",
                         {"job": 5}, status_code=202)
    event.refresh_from_db()
    assert (event.actor_name, event.action, event.target_type, event.target_id, event.target_repr) == (
        "operator", "container.start", "container", str(world.web_a.pk), "web-a")
    assert (event.team_id, event.address, event.via, event.result, event.status_code, event.detail) == (
        world.team_a.pk, "10.1.2.3", "api", "ok", 202, {"job": 5})
    dash = audit.record(RequestFactory().get("/containers/", REMOTE_ADDR="bogus"), AnonymousUser(),
                        "login", ("user", "", "x"), "denied")
    assert dash.via == "dashboard" and dash.address is None and dash.actor is None
    ws = audit.record({"type": "websocket", "client": ("127.0.0.1", 5555)}, world.users["owner"],
                      "container.logs", world.web_a, "ok")
    assert ws.via == "websocket" and ws.address == "127.0.0.1"
    with pytest.raises(ValueError):
        audit.record(None, None, "x", None, "maybe")
    assert AuditEvent.objects.count() == 3


def test_sign_in_and_failed_sign_in_are_audited(world):
    from django.test import Client

    client = Client(REMOTE_ADDR="192.0.2.7")
    assert client.post("/login/", {"username": "viewer", "password": "wrong"}).status_code == 200
    assert client.post("/login/", {"username": "viewer", "password": "pw-viewer-123"}).status_code == 302
    events = list(AuditEvent.objects.filter(action="auth.login").order_by("pk")
                  .values_list("result", "target_repr", "address", "via"))
    assert events == [("denied", "viewer", "192.0.2.7", "dashboard"), ("ok", "viewer", "192.0.2.7", "dashboard")]
