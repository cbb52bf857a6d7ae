"""Teams in the dashboard (non-superusers through the Django client): a team you are not in is a 404, a
viewer may look but not change members (403, nothing changed, refusal audited), an admin adds, re-roles and
removes members, the last admin stays, bad input names its field; only superusers make teams. The admin
site shows containers, hosts, images and jobs read-only (rows only the engine makes)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from containers.models import AuditEvent, Team, TeamMembership

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def people(db):
    User = get_user_model()
    users = {n: User.objects.create_user(n, password="pw-teams-123") for n in ("ada", "vic", "out", "new")}
    users["root"] = User.objects.create_superuser("root", password="pw-teams-123")
    team = Team.objects.create(name="blue")
    TeamMembership.objects.create(team=team, user=users["ada"], role="admin")
    TeamMembership.objects.create(team=team, user=users["vic"], role="viewer")
    return users, team


def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_outsider_sees_no_team_and_cannot_change_it(people):
    users, team = people
    out = client(users["out"])
    assert "blue" not in out.get("/teams/").content.decode()
    assert out.get(f"/teams/{team.pk}/").status_code == 404
    assert out.post(f"/teams/{team.pk}/members/", {"username": "out", "role": "admin"}).status_code == 404
    assert not TeamMembership.objects.filter(team=team, user=users["out"]).exists()


def test_viewer_may_look_but_not_change_members(people):
    users, team = people
    vic = client(users["vic"])
    page = vic.get(f"/teams/{team.pk}/").content.decode()
    assert "ada" in page and "Add a member" not in page
    answer = vic.post(f"/teams/{team.pk}/members/", {"username": "new", "role": "viewer"}, **JSON).json()
    assert answer["ok"] is False and answer["status"] == 403
    answer = vic.post(f"/teams/{team.pk}/members/{users['vic'].pk}/", {"role": "admin"}, **JSON).json()
    assert answer["status"] == 403
    assert TeamMembership.objects.get(team=team, user=users["vic"]).role == "viewer"
    assert not TeamMembership.objects.filter(team=team, user=users["new"]).exists()
    assert AuditEvent.objects.filter(action="team.member.add", result="denied").exists()


def test_admin_adds_reroles_removes_and_keeps_an_admin(people):
    users, team = people
    ada = client(users["ada"])
    bad = ada.post(f"/teams/{team.pk}/members/", {"username": "nobody", "role": "viewer"}, **JSON).json()
    assert bad["status"] == 400 and "nobody" in bad["errors"]["username"][0]
    bad = ada.post(f"/teams/{team.pk}/members/", {"username": "new", "role": "king"}, **JSON).json()
    assert bad["status"] == 400 and "role" in bad["errors"]
    assert ada.post(f"/teams/{team.pk}/members/", {"username": "new", "role": "operator"}).status_code == 302
    assert TeamMembership.objects.get(team=team, user=users["new"]).role == "operator"
    again = ada.post(f"/teams/{team.pk}/members/", {"username": "new", "role": "viewer"}, **JSON).json()
    assert again["status"] == 409
    # The only admin may not step down or leave.
    alone = ada.post(f"/teams/{team.pk}/members/{users['ada'].pk}/", {"role": "viewer"}, **JSON).json()
    assert alone["status"] == 409 and "at least one admin" in alone["message"]
    alone = ada.post(f"/teams/{team.pk}/members/{users['ada'].pk}/", {"remove": "1"}, **JSON).json()
    assert alone["status"] == 409
    assert ada.post(f"/teams/{team.pk}/members/{users['new'].pk}/", {"role": "admin"}, **JSON).json()["message"]
    assert ada.post(f"/teams/{team.pk}/members/{users['ada'].pk}/", {"remove": "1"}, **JSON).status_code == 200
    assert set(TeamMembership.objects.filter(team=team).values_list("user__username", "role")) == {
        ("vic", "viewer"), ("new", "admin")}
    assert {e.action for e in AuditEvent.objects.filter(result="ok")} >= {
        "team.member.add", "team.member.role", "team.member.remove"}


def test_only_superusers_make_teams(people):
    users, _ = people
    refused = client(users["ada"]).post("/teams/new/", {"name": "green"}, **JSON).json()
    assert refused["status"] == 403 and not Team.objects.filter(name="green").exists()
    root = client(users["root"])
    assert root.post("/teams/new/", {"name": "no good!"}, **JSON).json()["errors"]["name"]
    assert root.post("/teams/new/", {"name": "green"}).status_code == 302
    green = Team.objects.get(name="green")
    assert TeamMembership.objects.get(team=green).user == users["root"]


@pytest.mark.parametrize("model", ["container", "host", "image", "job"])
def test_admin_site_is_read_only_for_engine_rows(people, model):
    root = client(people[0]["root"])
    assert root.get(f"/admin/containers/{model}/add/").status_code == 403
    listing = root.get(f"/admin/containers/{model}/")
    assert listing.status_code == 200 and f"/admin/containers/{model}/add/" not in listing.content.decode()
