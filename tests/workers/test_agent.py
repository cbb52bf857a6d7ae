"""Host facts and heartbeat bookkeeping."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from containers.models import Host
from workers import agent

ROW = "{id} 1 0:{id} / {mp} rw,nosuid - {fs} {fs} rw\n"


def mountinfo(tmp_path, mounts: dict[str, str]) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("".join(ROW.format(id=i + 20, mp=mp, fs=fs) for i, (mp, fs) in enumerate(mounts.items())))
    return str(path)


def test_cgroup_version_detection(tmp_path):
    assert agent.cgroup_version(mountinfo(tmp_path, {"/": "ext4", "/sys/fs/cgroup": "cgroup2"})) == "v2"
    hybrid = {"/sys/fs/cgroup": "tmpfs", "/sys/fs/cgroup/unified": "cgroup2", "/sys/fs/cgroup/memory": "cgroup"}
    assert agent.cgroup_version(mountinfo(tmp_path, hybrid)) == "hybrid"
    assert agent.cgroup_version(mountinfo(tmp_path, {"/sys/fs/cgroup": "tmpfs",
                                                     "/sys/fs/cgroup/memory": "cgroup"})) == "v1"


def test_facts_describe_this_machine(tmp_path):
    facts = agent.host_facts(tmp_path)
    assert facts["kernel"] == os.uname().release
    assert facts["cpus"] == len(os.sched_getaffinity(0))
    assert facts["memory_bytes"] > 0 and facts["disk_free_bytes"] > 0
    assert facts["runtimes"][0] == "berth"


def test_process_token_tells_live_from_dead():
    assert agent.token_alive(agent.process_token())
    proc = subprocess.Popen(["true"])
    token = agent.process_token(proc.pid)
    proc.wait()
    assert not agent.token_alive(token)
    assert not agent.token_alive("")
    # Same PID, different start time: a reused PID is not the same process.
    assert not agent.token_alive(f"{os.getpid()}:1")


@pytest.mark.django_db
def test_beat_registers_the_host_and_online_is_derived(settings):
    settings.BERTH_HOST_OFFLINE_AFTER = 15
    host = agent.beat("node-b")
    assert host.online and host.kernel == os.uname().release and host.cpus >= 1
    assert list(Host.objects.online()) == [host]
    Host.objects.filter(pk=host.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=16))
    host.refresh_from_db()
    assert not host.online and not Host.objects.online().exists()
    assert agent.beat("node-b").pk == host.pk  # a heartbeat brings it back, same row
    assert Host.objects.get(pk=host.pk).online


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_of_a_host_whose_join_token_was_revoked_refuses_it(django_user_model):
    # mutant: Heartbeat.run beats before asking refusal() (or refusal() ignores `revoked`)
    from containers import join

    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    row, token = join.make_token(root, "rack")
    host = join.join(token, "node-h")
    Host.objects.create(name="local")  # make run's own host: no token, never refused
    assert agent.refusal("local") is None and agent.refusal("node-h") is None
    join.JoinToken.objects.filter(pk=row.pk).update(revoked=timezone.now())
    assert "was revoked" in agent.refusal("node-h")
    refused: list[str] = []
    beat = agent.Heartbeat("node-h", interval=0.05, on_refused=refused.append)
    beat.start()
    beat.join(10)
    assert not beat.is_alive() and len(refused) == 1 and "node-h is refused" in refused[0]
    assert Host.objects.get(pk=host.pk).last_heartbeat is None  # refused before beating
