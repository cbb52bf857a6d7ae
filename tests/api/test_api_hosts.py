"""Hosts through the API (issue 18): join tokens (admins only, shown once, hashed, revocable, expiring), what
a join may and may not do, labels, cordon (a create refused at the host field) and drain. Each test names the
one-line change of the product it catches."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from containers import join, services
from containers.models import AuditEvent, Container, Host, Job, JoinToken

pytestmark = pytest.mark.django_db
NON_ADMINS = ("owner", "viewer", "operator", "admin", "outsider")


def test_a_join_token_is_shown_once_and_only_its_hash_is_kept(world, api_client):
    # mutant: join.make_token stores key_hash=token (in clear), or the list serializer gains "token"
    root = api_client("root")
    made = root.post("/api/v1/hosts/join-tokens", {"name": "rack-2", "host_name": "node-9"}, format="json")
    assert made.status_code == 201, made.content
    token = made.json()["token"]
    row = JoinToken.objects.get(pk=made.json()["id"])
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(JoinToken.objects.values()))
    assert token.startswith(row.prefix) and made.json()["created_by"] == "root"
    listed = root.get("/api/v1/hosts/join-tokens").content.decode()
    one = root.get(f"/api/v1/hosts/join-tokens/{row.pk}")
    assert token not in listed and token not in one.content.decode() and "token" not in one.json()
    assert one.json()["status"] == "active" and one.json()["host_name"] == "node-9"
    event = AuditEvent.objects.get(action="host.join_token.create")
    assert (event.actor.username, event.result, event.target_id, event.via) == ("root", "ok", str(row.pk), "api")
    assert token not in str(event.detail)


@pytest.mark.parametrize("role", NON_ADMINS)
def test_non_admins_neither_see_nor_make_nor_revoke_join_tokens_nor_change_hosts(world, api_client, role):
    # mutant: require_admin() returns early (or services.join_tokens lets everyone list)
    row, _ = join.make_token(world.users["root"], "rack")
    client = api_client(role)
    assert client.get("/api/v1/hosts/join-tokens").status_code == 403
    assert client.post("/api/v1/hosts/join-tokens", {"name": "mine"}, format="json").status_code == 403
    assert client.get(f"/api/v1/hosts/join-tokens/{row.pk}").status_code == 404
    assert client.delete(f"/api/v1/hosts/join-tokens/{row.pk}").status_code == 404
    assert client.patch(f"/api/v1/hosts/{world.host.pk}", {"labels": ["gpu"], "cordoned": True},
                        format="json").status_code == 403
    assert client.post(f"/api/v1/hosts/{world.host.pk}/drain").status_code == 403
    assert "join_token" in client.get(f"/api/v1/hosts/{world.host.pk}").json()  # hosts themselves are visible
    assert list(JoinToken.objects.values_list("name", "revoked")) == [("rack", None)]
    host = Host.objects.get(pk=world.host.pk)
    assert (host.labels, host.cordoned, host.draining) == ({}, False, False)
    denied = set(AuditEvent.objects.filter(result="denied", actor=world.users[role]).values_list("action", flat=True))
    assert {"host.join_token.create", "host.join_token.revoke", "host.update", "host.drain"} <= denied


def test_revoke_refuses_joins_and_the_joined_hosts_heartbeat(world, api_client):
    # mutant: revoke_join_token forgets to set `revoked` (or join.refusal ignores it)
    row, token = join.make_token(world.users["root"], "rack")
    host = join.join(token, "node-r", {"gpu": ""})
    assert join.refusal("node-r") is None and join.refusal(world.host.name) is None  # no token: never refused
    answer = api_client("root").delete(f"/api/v1/hosts/join-tokens/{row.pk}")
    assert answer.status_code == 200 and answer.json()["status"] == "revoked" and answer.json()["hosts"] == ["node-r"]
    first = JoinToken.objects.get(pk=row.pk).revoked
    assert first is not None
    with pytest.raises(join.JoinRefused, match="was revoked"):
        join.join(token, "node-r")
    assert "was revoked" in join.refusal(host.name)
    assert api_client("root").delete(f"/api/v1/hosts/join-tokens/{row.pk}").json()["status"] == "revoked"
    assert JoinToken.objects.get(pk=row.pk).revoked == first  # revoking again keeps the first time
    event = AuditEvent.objects.get(action="host.join_token.revoke", result="ok")
    assert event.actor.username == "root" and event.detail["hosts"] == ["node-r"]
    assert AuditEvent.objects.filter(action="host.join", result="denied").exists()


def test_an_expired_token_joins_no_more_but_its_hosts_keep_working(world, api_client):
    # mutant: join.token_row skips the `expired` check
    root = api_client("root")
    past = root.post("/api/v1/hosts/join-tokens", {"name": "old", "expires_in": 0}, format="json")
    assert past.status_code == 400 and "expires_in" in past.json()["error"]["fields"]
    made = root.post("/api/v1/hosts/join-tokens", {"name": "soon", "expires_in": 3600}, format="json").json()
    expires = JoinToken.objects.get(pk=made["id"]).expires
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)
    join.join(made["token"], "node-e")
    JoinToken.objects.filter(pk=made["id"]).update(expires=timezone.now() - timedelta(seconds=1))
    with pytest.raises(join.JoinRefused, match="expired"):
        join.join(made["token"], "node-f")
    assert not Host.objects.filter(name="node-f").exists()
    assert join.refusal("node-e") is None  # expiry ends joining, not the hosts that joined
    assert root.get(f"/api/v1/hosts/join-tokens/{made['id']}").json()["status"] == "expired"


def test_a_token_joins_only_as_its_host_and_takes_over_no_other(world):
    # mutant: join() drops the "exists and did not join with this token" check
    root = world.users["root"]
    _, free = join.make_token(root, "free")
    with pytest.raises(join.JoinRefused, match="did not join with this token"):
        join.join(free, world.host.name)  # the control plane's own host (no token)
    first = join.join(free, "node-1", {"zone": "a"})
    assert join.join(free, "node-1").labels == {"zone": "a"}  # re-join keeps labels when none are given
    _, other = join.make_token(root, "other")
    with pytest.raises(join.JoinRefused, match="did not join with this token"):
        join.join(other, "node-1")
    fixed_row, fixed = join.make_token(root, "for node-1", host_name="node-1")
    with pytest.raises(join.JoinRefused, match="is for host node-1"):
        join.join(fixed, "node-2")
    again = join.join(fixed, "")  # a token made for the host re-joins it, under the new token
    assert (again.pk, again.join_token_id) == (first.pk, fixed_row.pk)
    with pytest.raises(join.JoinRefused, match="unknown join token"):
        join.join("berthjoin_nope", "node-3")


def test_labels_are_set_by_patch_and_checked(world, api_client):
    # mutant: parse_labels keeps only keys ({"zone": ""}) or accepts any text as a key
    root = api_client("root")
    answer = root.patch(f"/api/v1/hosts/{world.host.pk}", {"labels": ["ssd", "zone=a"]}, format="json")
    assert answer.status_code == 200 and answer.json()["labels"] == {"ssd": "", "zone": "a"}
    assert root.patch(f"/api/v1/hosts/{world.host.pk}", {"labels": ["gpu=a100"]},
                      format="json").json()["labels"] == {"gpu": "a100"}
    bad = root.patch(f"/api/v1/hosts/{world.host.pk}", {"labels": ["ok", "no spaces=x y"]}, format="json")
    assert bad.status_code == 400 and any(k.startswith("labels") for k in bad.json()["error"]["fields"])
    with pytest.raises(services.ServiceError) as refused:  # the dashboard's text goes through the same check
        services.update_host(world.users["root"], world.host, labels="ok, =x")
    assert (refused.value.code, refused.value.field) == ("invalid", "labels")
    assert Host.objects.get(pk=world.host.pk).labels == {"gpu": "a100"}
    events = list(AuditEvent.objects.filter(action="host.labels").values_list("result", flat=True))
    assert sorted(events) == ["invalid", "ok", "ok"]


def test_a_cordoned_host_refuses_new_containers_at_the_host_field(world, api_client):
    # mutant: create_container no longer calls check_not_cordoned
    root, owner = api_client("root"), api_client("owner")
    patched = root.patch(f"/api/v1/hosts/{world.host.pk}", {"cordoned": True}, format="json")
    assert patched.status_code == 200 and patched.json()["cordoned"] is True
    before = (Container.objects.count(), Job.objects.count())
    refused = owner.post("/api/v1/containers", {"image": "app-a:1", "name": "late", "host": world.host.pk},
                         format="json")
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "conflict" and "cordoned" in error["fields"]["host"][0]
    assert (Container.objects.count(), Job.objects.count()) == before
    assert AuditEvent.objects.filter(action="host.cordon", result="ok").count() == 1
    assert root.patch(f"/api/v1/hosts/{world.host.pk}", {"cordoned": False}, format="json").json()["cordoned"] is False
    made = owner.post("/api/v1/containers", {"image": "app-a:1", "name": "late", "host": world.host.pk}, format="json")
    assert made.status_code == 202, made.content
    assert AuditEvent.objects.filter(action="host.uncordon", result="ok").count() == 1


def test_drain_cordons_and_lists_what_still_runs_there(world, api_client):
    # mutant: drain_host does not cordon (only lists)
    answer = api_client("root").post(f"/api/v1/hosts/{world.host.pk}/drain")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["host"]["cordoned"] is True and body["host"]["draining"] is True
    assert sorted(c["name"] for c in body["containers"]) == ["web-a", "web-b"]
    assert "move: true" in body["note"] and body["moves"] == []  # without move, nothing moves
    assert list(Container.objects.filter(host=world.host).values_list("state", flat=True)) == ["running"] * 2
    refused = api_client("owner").post("/api/v1/containers", {"image": "app-a:1", "host": world.host.pk},
                                       format="json")
    assert refused.status_code == 409 and "draining" in refused.json()["error"]["fields"]["host"][0]
    undone = api_client("root").patch(f"/api/v1/hosts/{world.host.pk}", {"cordoned": False}, format="json").json()
    assert (undone["cordoned"], undone["draining"]) == (False, False)
    assert AuditEvent.objects.get(action="host.drain").detail == {"containers": 2}


def test_drain_with_move_queues_a_move_of_each_container_to_the_least_loaded_host(world, api_client):
    # mutant: drain_move._least_loaded picks max instead of min (the busier spare)
    from django.utils import timezone

    now = timezone.now()
    idle = Host.objects.create(name="spare-idle", cpus=4, last_heartbeat=now)
    busy = Host.objects.create(name="spare-busy", cpus=1, last_heartbeat=now)
    Container.objects.create(name="busy-1", host=busy, owner=world.users["root"], state="running")
    answer = api_client("root").post(f"/api/v1/hosts/{world.host.pk}/drain", {"move": True}, format="json")
    assert answer.status_code == 200, answer.content
    moves = answer.json()["moves"]
    assert [(m["name"], m["host"]) for m in moves] == [("web-a", "spare-idle"), ("web-b", "spare-idle")]
    jobs = Job.objects.filter(kind="container.move").order_by("pk")
    assert [j.pk for j in jobs] == [m["job"] for m in moves]
    assert all(j.host_id == world.host.pk and j.params["to_host"] == idle.pk for j in jobs)
    assert Container.objects.filter(host=idle).count() == 2  # the rows waiting for their move
