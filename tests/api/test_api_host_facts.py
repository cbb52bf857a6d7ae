"""What the web side checks at create comes from the host's heartbeat facts, never from the web machine: the
CPUs and memory of the host, and the dirs ITS admin lets non-superusers bind-mount (facts.bind_roots, from the
worker's BERTH_BIND_MOUNT_ROOTS). The web server's own BERTH_BIND_MOUNT_ROOTS means nothing for a host."""

from __future__ import annotations

import pytest

from workers import agent
from workers.handlers.containers import create_kwargs

pytestmark = pytest.mark.django_db


def create(client, **spec):
    return client.post("/api/v1/containers", {"image": "app-a:1", "command": ["true"], **spec}, format="json")


def test_bind_mounts_are_checked_against_the_hosts_reported_roots(world, api_client, settings):
    settings.BERTH_BIND_MOUNT_ROOTS = ["/srv/web-machine"]  # the web machine's: not the host's
    world.host.facts = {"bind_roots": ["/srv/shared"]}
    world.host.save()
    op = api_client("operator")
    r = create(op, team=world.team_a.pk, mounts=["/srv/web-machine/x:/data"])
    assert r.status_code == 403 and "mounts" in r.json()["error"]["fields"], r.content
    assert "/srv/shared" in r.json()["error"]["message"]
    r = create(op, team=world.team_a.pk, mounts=["/srv/shared/data:/data"])
    assert r.status_code == 202, r.content
    from containers.models import Job

    job = Job.objects.get(pk=r.json()["job"]["id"])
    assert job.params["bind_roots"] == ["/srv/shared"]
    # The host confines the source to its OWN roots when it makes the container, whatever the params say.
    settings.BERTH_BIND_MOUNT_ROOTS = ["/srv/host-own"]
    assert create_kwargs(job.params, job_target(job))["bind_roots"] == ["/srv/host-own"]


def job_target(job):
    from containers.models import Container

    return Container.objects.get(pk=job.target_id)


def test_cpus_and_memory_within_the_hosts_and_refused_at_their_field(world, api_client):
    op = api_client("operator")
    r = create(op, team=world.team_a.pk, cpus=5)  # the world's host reports 4 CPUs
    assert r.status_code == 400 and "cpus" in r.json()["error"]["fields"] and "host api-node" in r.content.decode()
    r = create(op, team=world.team_a.pk, memory=str(9 << 30))  # and 8 GiB
    assert r.status_code == 400 and "memory" in r.json()["error"]["fields"], r.content
    assert create(op, team=world.team_a.pk, cpus=2, memory="64m").status_code == 202


def test_the_heartbeat_reports_the_hosts_bind_roots(settings, tmp_path):
    settings.BERTH_BIND_MOUNT_ROOTS = ["/srv/a", "/srv/b"]
    facts = agent.host_facts(tmp_path)
    assert facts["bind_roots"] == ["/srv/a", "/srv/b"] and facts["state_root"] == str(tmp_path)
