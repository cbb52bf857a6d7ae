"""Placement through the API (issue 18): with no host, a container goes to the least loaded online, uncordoned
host whose labels match and that has the image for this user; why is kept on the row and returned. Each test
names the one-line change of the product (containers/services/placement.py unless said) it catches.

The `world` host "api-node" has 4 CPUs, 2 running containers (load 0.5) and the shared busybox:latest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from containers import services
from containers.models import AuditEvent, Container, Host, Image, Job

pytestmark = pytest.mark.django_db


def _host(name: str, *, cpus: int = 2, labels: dict | None = None, online: bool = True, cordoned: bool = False,
          draining: bool = False, busybox: bool = True) -> Host:
    beat = timezone.now() - (timedelta(0) if online else timedelta(hours=1))
    host = Host.objects.create(name=name, cpus=cpus, last_heartbeat=beat, labels=labels or {}, cordoned=cordoned,
                               draining=draining)
    if busybox:
        Image.objects.create(name="busybox", tag="latest", host=host, shared=True, digest="sha256:" + "1" * 64)
    return host


def _load(host: Host, running: int, exited: int = 0) -> None:
    for i in range(running + exited):
        Container.objects.create(name=f"c{i}", host=host, image_ref="busybox:latest",
                                 state="running" if i < running else "exited")


def _place(client, **body):
    return client.post("/api/v1/containers", {"image": "busybox", "start": False, **body}, format="json")


def test_the_least_loaded_host_by_running_per_cpu_is_chosen_and_why_is_kept_and_returned(world, api_client):
    # mutants: load counts every container, not running ones (-> api-node); load is not divided by CPUs
    # (-> node-b); min() becomes max() (-> node-b); create_container drops placement=chosen (row's placement None)
    _load(_host("node-b", cpus=1), running=1)               # 1.0 per CPU
    _load(_host("node-c", cpus=16), running=4, exited=10)   # 0.25 per CPU (14 containers in all)
    owner = api_client("owner")
    made = _place(owner, name="placed")
    assert made.status_code == 202, made.content
    container = made.json()["container"]
    assert container["host_name"] == "node-c"
    placement = container["placement"]
    assert placement["host"] == "node-c" and placement["labels"] == []
    assert placement["reason"] == "least loaded of 3 matching hosts (0.25 running per CPU)"
    by_host = {c["host"]: c for c in placement["considered"]}
    assert set(by_host) == {"api-node", "node-b", "node-c"}
    assert [h for h, c in by_host.items() if c["chosen"]] == ["node-c"]
    assert (by_host["api-node"]["load"], by_host["node-b"]["load"], by_host["node-c"]["load"]) == (0.5, 1.0, 0.25)
    assert by_host["node-c"]["reason"] == "4 running on 16 CPU(s)"
    row = Container.objects.get(pk=container["id"])
    assert row.host.name == "node-c" and row.placement == placement and row.image.host_id == row.host_id
    assert Job.objects.get(pk=made.json()["job"]["id"]).host.name == "node-c"
    shown = owner.get(f"/api/v1/containers/{row.pk}").json()
    assert shown["placement"] == placement
    # a named host is today's path: nothing placed, nothing recorded
    named = _place(owner, name="named", host="node-b")
    assert named.status_code == 202 and named.json()["container"]["placement"] is None


def test_labels_filter_hosts_a_bare_key_needs_the_key_and_key_value_that_value(world, api_client):
    # mutants: _label_misses returns [] (-> api-node); it compares keys only, ignoring "=v" (-> node-za);
    # a bare key is taken as key="" (-> refused: no host has zone="")
    _host("node-za", labels={"ssd": "", "zone": "a"})
    _load(_host("node-zb", labels={"ssd": "", "zone": "b"}), running=3)  # 1.5 per CPU, api-node is 0.5
    owner = api_client("owner")
    made = _place(owner, name="on-b", placement={"labels": ["ssd", "zone=b"]})
    assert made.status_code == 202, made.content
    placement = made.json()["container"]["placement"]
    assert placement["host"] == "node-zb" and placement["labels"] == ["ssd", "zone=b"]
    assert placement["reason"] == "least loaded of 1 matching host (1.5 running per CPU)"
    why = {c["host"]: c["reason"] for c in placement["considered"]}
    assert why["api-node"] == "lacks label ssd, zone=b" and why["node-za"] == "lacks label zone=b"
    bare = _place(owner, name="any-zone", placement={"labels": ["zone"]})
    assert bare.status_code == 202, bare.content
    assert bare.json()["container"]["host_name"] == "node-za"


def test_offline_cordoned_and_draining_hosts_are_skipped_saying_why(world, api_client):
    # mutants: the `not host.online` check is dropped (-> node-off); the cordoned check is dropped (-> node-cord)
    _host("node-off", cpus=64, online=False)
    _host("node-cord", cpus=64, cordoned=True)
    _host("node-drain", cpus=64, cordoned=True, draining=True)
    made = _place(api_client("owner"), name="kept")
    assert made.status_code == 202, made.content
    placement = made.json()["container"]["placement"]
    assert placement["host"] == "api-node"
    assert placement["reason"] == "least loaded of 1 matching host (0.5 running per CPU)"
    why = {c["host"]: (c["reason"], c["load"]) for c in placement["considered"]}
    assert why["node-off"] == ("offline", None) and why["node-cord"] == ("cordoned", None)
    assert why["node-drain"] == ("draining", None)


def test_a_host_without_the_image_this_user_may_run_is_skipped(world, api_client):
    # mutants: choose_host skips _resolve_image (-> node-empty); it looks images up in Image.objects rather than
    # the user's visible ones (-> node-hidden, whose busybox is team B's private image)
    _host("node-empty", cpus=64, busybox=False)
    hidden = _host("node-hidden", cpus=64, busybox=False)
    Image.objects.create(name="busybox", tag="latest", host=hidden, owner=world.users["outsider"], team=world.team_b,
                         digest="sha256:" + "2" * 64)
    made = _place(api_client("owner"), name="has-image")
    assert made.status_code == 202, made.content
    placement = made.json()["container"]["placement"]
    assert placement["host"] == "api-node"
    why = {c["host"]: c["reason"] for c in placement["considered"]}
    assert why["node-empty"] == "no image busybox:latest on host node-empty"
    assert why["node-hidden"] == "no image busybox:latest on host node-hidden"
    # the outsider sees team B's image there and is placed on it (the same resolution, per user)
    theirs = _place(api_client("outsider"), name="theirs")
    assert theirs.status_code == 202 and theirs.json()["container"]["host_name"] == "node-hidden"


def test_refusals_name_the_field_and_each_host_with_why(world, api_client):
    # mutants: choose_host raises at "host" whatever `usable` is (the image case answers 409 at host); the summary
    # of considered hosts is left out of the message; create_container accepts host and placement together
    _host("node-off", online=False)
    owner = api_client("owner")
    before = (Container.objects.count(), Job.objects.count())
    no_host = _place(owner, name="x", placement={"labels": ["gpu"]})
    assert no_host.status_code == 409, no_host.content
    error = no_host.json()["error"]
    assert error["code"] == "conflict" and list(error["fields"]) == ["host"]
    assert error["message"] == ("no online, uncordoned host with labels gpu to run on "
                                "(api-node: lacks label gpu; node-off: offline)")
    no_image = _place(owner, name="x", image="nope:1")
    assert no_image.status_code == 404, no_image.content
    error = no_image.json()["error"]
    assert error["code"] == "no_such_image" and list(error["fields"]) == ["image"]
    assert "api-node: no image nope:1 on host api-node" in error["message"] and "node-off: offline" in error["message"]
    both = _place(owner, name="x", host="api-node", placement={"labels": []})
    assert both.status_code == 400 and list(both.json()["error"]["fields"]) == ["placement"]
    bad = _place(owner, name="x", placement={"labels": ["zone=a b"]})
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["placement.labels.0"]
    assert (Container.objects.count(), Job.objects.count()) == before
    refused = AuditEvent.objects.filter(action="container.create", actor=world.users["owner"])
    assert {e.detail.get("field") for e in refused} >= {"host", "image", "placement"}


def test_ties_go_to_fewer_containers_then_to_the_name(world, api_client):
    # mutants: the tie key drops the container count (-> node-x, first by name); the key orders names backwards
    # (-> node-z). (Dropping the name alone is not a fault: hosts are listed by name and min() keeps the first.)
    _load(_host("node-x"), running=0, exited=1)  # all three at 0 running per CPU; api-node is at 0.5
    _host("node-z")
    _host("node-y")
    owner = api_client("owner")
    chosen = [_place(owner, name=f"t{i}").json()["container"]["placement"] for i in range(3)]
    assert chosen[0]["reason"] == "least loaded of 4 matching hosts (0 running per CPU)"
    # a created (not running) container adds no load but counts in the tie: y, then z, then x (1 each now)
    assert [p["host"] for p in chosen] == ["node-y", "node-z", "node-x"]


def test_the_service_places_too_and_reads_bad_placements(world):
    # mutant: parse_placement no longer refuses keys other than "labels" ({"zone": "a"} would place anywhere)
    owner = world.users["owner"]
    _host("node-s", cpus=8, labels={"ssd": ""})
    container, job = services.create_container(owner, host=None, image="busybox", start=False,
                                               placement={"labels": ["ssd"]})
    assert container.host.name == "node-s" and job.host.name == "node-s" and container.placement["host"] == "node-s"
    for bad in (["ssd"], {"labels": "ssd"}, {"labels": ["bad label"]}, {"zone": "a"}):
        with pytest.raises(services.ServiceError) as exc:
            services.create_container(owner, host=None, image="busybox", placement=bad)
        assert exc.value.field == "placement" and exc.value.status == 400


def test_an_image_seen_but_not_runnable_is_refused_as_forbidden_as_on_a_named_host(world, api_client):
    # mutant: choose_host drops the `forbidden` case (a viewer is told 404 no_such_image instead of 403)
    _host("node-other", busybox=False)
    refused = _place(api_client("viewer"), name="x", image="app-a:1")
    assert refused.status_code == 403, refused.content
    error = refused.json()["error"]
    assert error["code"] == "forbidden" and list(error["fields"]) == ["image"]
    assert "api-node: you may not run containers from app-a:1" in error["message"]
    assert "node-other: no image app-a:1 on host node-other" in error["message"]
