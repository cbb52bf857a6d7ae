"""Networks on the real stack (issue #13): real redis-server, a real Celery worker, the real engine, netavark.
Users act through the services (the path of the API and the dashboard) as non-superusers.

Alice runs a web server and a client on her network `app`: the client reaches the server by its user-facing
name, the host reaches its published port. Bob, on his own default network, cannot reach Alice's server."""

from __future__ import annotations

import urllib.request

import pytest
from django.contrib.auth import get_user_model

from containers import services
from containers.models import Container, Job, Network
from containers.services import networks as services_networks
from tests.e2e.test_container_jobs import host_worker, log_text, row_where, seed  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def run(user, worker, wait_job, name: str, command: list[str], **spec) -> Container:
    row, job = services.create_container(user, host=worker.host, image="busybox:latest", name=name,
                                         command=command, **spec)
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    return Container.objects.get(pk=row.pk)


def output(user, row, wait_job, wait_for) -> str:
    row_where(wait_for, row, "exited", state="exited")
    return log_text(wait_job(services.container_action(user, row, "logs")))


def test_two_tenants_networks_names_and_a_published_port(host_worker, wait_job, wait_for):  # noqa: F811
    users = get_user_model().objects
    alice, bob = users.create_user("alice", password="pw-alice-123"), users.create_user("bob", password="pw-bob-123")
    w = host_worker("net-e2e")
    seed(w, wait_job)
    net, job = services_networks.create_network(alice, host=w.host, name="app", subnet="10.231.30.0/24")
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    assert Network.objects.get(pk=net.pk).gateway == "10.231.30.1"

    web = run(alice, w, wait_job, "web", ["httpd", "-f", "-p", "80", "-h", "/etc"], networks=["app"], ports=["80"])
    ports = web.network["ports"]
    assert ports[0]["host_ip"] == "127.0.0.1" and web.network["networks"][net.engine_name]["ip"] == "10.231.30.2"
    body = urllib.request.urlopen(f"http://127.0.0.1:{ports[0]['host_port']}/hostname", timeout=10).read()
    assert body.decode().strip() == web.engine_id[:12]

    cli = run(alice, w, wait_job, "cli", ["wget", "-qO-", "http://web/hostname"], networks=["app"])
    assert output(alice, cli, wait_job, wait_for).strip() == web.engine_id[:12]

    spy = run(bob, w, wait_job, "spy", ["sh", "-c", "timeout 3 wget -qO- http://10.231.30.2/hostname; echo rc=$?; "
                                                    "nslookup web >/dev/null 2>&1; echo dns=$?"])
    out = output(bob, spy, wait_job, wait_for)
    assert "rc=0" not in out and "dns=0" not in out and web.engine_id[:12] not in out
    assert spy.network["networks"] and net.engine_name not in spy.network["networks"]

    with pytest.raises(services.ServiceError) as refused:
        services_networks.remove_network(alice, net)
    assert refused.value.code == "network_in_use"
    for row in (web, cli):
        assert wait_job(services.container_action(alice, row, "remove", params={"force": True})).state == "succeeded"
    job = wait_job(services_networks.remove_network(alice, Network.objects.get(pk=net.pk)))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert not Network.objects.filter(pk=net.pk).exists()
    assert net.engine_name not in [n["name"] for n in _engine_networks(w)]


def _engine_networks(w) -> list[dict]:
    from workers.engine.net import NetworkManager

    return NetworkManager(w.state_root).list()


def test_kill_9_of_the_worker_keeps_containers_reachable(host_worker, wait_job, wait_for):  # noqa: F811
    """The data plane is the kernel's: a worker killed with SIGKILL and started again (reconcile) leaves the
    published port answering and the container's address reserved; removal afterwards leaves nothing."""
    alice = get_user_model().objects.create_user("alice", password="pw-alice-123")
    w = host_worker("net-k9")
    seed(w, wait_job)
    web = run(alice, w, wait_job, "web", ["httpd", "-f", "-p", "80", "-h", "/etc"], ports=["80"])
    port = web.network["ports"][0]["host_port"]
    ip = web.network["ip"]
    w.kill9()
    again = host_worker("net-k9", state_root=w.state_root)  # reconciles at start
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10).status == 200
    from workers.engine.net import NetworkManager

    nets = NetworkManager(again.state_root).list()
    assert [ip] == [c["ip"] for n in nets for c in n["containers"].values()]
    job = wait_job(services.container_action(alice, Container.objects.get(pk=web.pk), "remove",
                                             params={"force": True}))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert all(not n["containers"] for n in NetworkManager(again.state_root).list())
