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
