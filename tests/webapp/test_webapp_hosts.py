"""The Hosts page (issue 18): join tokens made and revoked by admins (shown once), labels, cordon and drain;
non-admins see none of it and are refused. Each test names the one-line change of the product it catches."""

from __future__ import annotations

import hashlib

import pytest

import tests.webapp.test_dashboard_pages as pages
from containers.models import AuditEvent, Container, Host, Job, JoinToken
from tests.webapp.test_dashboard_forms import create

dash = pages.dash  # two hosts, a team with one user per role, their objects

pytestmark = pytest.mark.django_db
NON_ADMINS = ("owner", "viewer", "operator", "admin", "outsider")


def test_an_admin_makes_a_join_token_shown_on_that_response_only(dash):
    # mutant: views_hosts._page puts new_token in every context (or the template shows t.key_hash)
    root = dash.client("root")
    made = root.post("/hosts/join-tokens/", {"name": "rack-2", "host_name": "node-9", "expires_hours": "24"})
    assert made.status_code == 201 and made["Cache-Control"] == "no-store"
    row = JoinToken.objects.get(name="rack-2")
    body = made.content.decode()
    token = body.split('data-token>', 1)[1].split("<", 1)[0]
    assert hashlib.sha256(token.encode()).hexdigest() == row.key_hash and "HOST_NAME=node-9" in body
    assert row.expires is not None and row.created_by.username == "root"
    later = root.get("/hosts/").content.decode()
    assert token not in later and row.prefix in later and "rack-2" in later
    event = AuditEvent.objects.get(action="host.join_token.create")
    assert (event.via, event.result, event.actor.username) == ("dashboard", "ok", "root")


def test_a_bad_token_form_says_why_at_its_field_and_makes_nothing(dash):
    # mutant: create_join_token accepts an invalid host name
    r = dash.client("root").post("/hosts/join-tokens/", {"name": "x", "host_name": "no spaces"})
    assert r.status_code == 400 and 'id="jt-host-error"' in r.content.decode()
    assert not JoinToken.objects.exists()


@pytest.mark.parametrize("role", NON_ADMINS)
def test_non_admins_see_no_tokens_and_are_refused(dash, role):
    # mutant: the template shows the join tokens section to every user (or the services skip require_admin)
    from containers import join

    row, _ = join.make_token(dash.users["root"], "rack")
    client = dash.client(role)
    page = client.get("/hosts/").content.decode()
    assert "Join tokens" not in page and "rack" not in page and "Cordon" not in page
    assert client.post("/hosts/join-tokens/", {"name": "mine"}).status_code == 403
    assert client.post(f"/hosts/join-tokens/{row.pk}/revoke/").status_code == 404
    assert client.post(f"/hosts/{dash.host.pk}/labels/", {"labels": "gpu"}).status_code == 403
    for action in ("cordon", "drain", "drain-move"):
        assert client.post(f"/hosts/{dash.host.pk}/{action}/").status_code == 403
    assert "Drain and move" not in page and not Job.objects.filter(kind="container.move").exists()
    assert list(JoinToken.objects.values_list("name", "revoked")) == [("rack", None)]
    host = Host.objects.get(pk=dash.host.pk)
    assert (host.labels, host.cordoned) == ({}, False)


def test_revoke_from_the_page_lists_the_joined_hosts(dash):
    # mutant: join_token_revoke does not call the service (nothing revoked)
    from containers import join

    row, token = join.make_token(dash.users["root"], "rack")
    join.join(token, "node-j")
    r = dash.client("root").post(f"/hosts/join-tokens/{row.pk}/revoke/", follow=True)
    assert JoinToken.objects.get(pk=row.pk).revoked is not None
    page = r.content.decode()
    assert "revoked" in page and "node-j" in page and "refused at their next heartbeat" in page
    assert AuditEvent.objects.filter(action="host.join_token.revoke", result="ok", via="dashboard").count() == 1


def test_labels_cordon_and_drain_from_the_page(dash):
    # mutant: host_state passes cordoned=True for "uncordon"
    root = dash.client("root")
    root.post(f"/hosts/{dash.host.pk}/labels/", {"labels": "ssd, zone=a"})
    assert Host.objects.get(pk=dash.host.pk).labels == {"ssd": "", "zone": "a"}
    drained = root.post(f"/hosts/{dash.host.pk}/drain/", follow=True).content.decode()
    assert "web" in drained and "hidden-box" in drained and "Move or copy to another host" in drained
    assert Host.objects.filter(pk=dash.host.pk, cordoned=True, draining=True).exists()
    root.post(f"/hosts/{dash.host.pk}/uncordon/")
    assert Host.objects.filter(pk=dash.host.pk, cordoned=False, draining=False).exists()
    assert Container.objects.filter(host=dash.host).count() == 2  # drain moved nothing


def test_drain_and_move_from_the_page_queues_a_move_of_each_container_and_says_what_stays(dash):
    # mutant: views_hosts.host_state's drain-move does not call move_off (drains, moves nothing)
    root = dash.client("root")
    page = root.get("/hosts/").content.decode()
    assert f'action="/hosts/{dash.host.pk}/drain-move/"' in page and "data-confirm=\"Drain dash-a and move" in page
    done = root.post(f"/hosts/{dash.host.pk}/drain-move/", follow=True).content.decode()
    assert Host.objects.filter(pk=dash.host.pk, cordoned=True, draining=True).exists()
    moves = list(Job.objects.filter(kind="container.move").order_by("pk"))
    assert [(j.target_id, j.host_id, j.params["to_host"]) for j in moves] == [
        (str(dash.secret.pk), dash.host.pk, dash.host_b.pk), (str(dash.web.pk), dash.host.pk, dash.host_b.pk)]
    assert f"Moving: hidden-box to dash-b (job #{moves[0].pk}), web to dash-b (job #{moves[1].pk})" in done
    # Again: each container is being moved already, which the page says, and nothing more is queued.
    again = root.post(f"/hosts/{dash.host.pk}/drain-move/", follow=True).content.decode()
    assert "Still on dash-a: hidden-box (container hidden-box is being moved or copied already)" in again
    assert Job.objects.filter(kind="container.move").count() == 2


def test_the_create_form_puts_a_cordoned_host_refusal_at_the_host_field(dash):
    # mutant: check_not_cordoned raises without field="host"
    Host.objects.filter(pk=dash.host.pk).update(cordoned=True)
    before = pages.snapshot()
    r = create(dash, json=True, name="late")
    data = r.json()
    assert data["ok"] is False and data["code"] == "conflict" and "cordoned" in " ".join(data["errors"]["host"])
    assert pages.snapshot() == before
