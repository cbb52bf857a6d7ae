"""A subset of the isolation battery under Berth's runtime and under runc, through the one runtime seam
(ContainerManager.create(runtime=...) -> containers/oci.py), asserting what a process inside sees."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engine.conftest import host_mounts_under
from tests.engine.containers.helpers import output, run, wait_for_line
from workers.engine.containers import ContainerManager, InvalidConfig, oci, runtime_probe
from workers.engine.runtime.caps import mask
from workers.engine.runtime.spec import DEFAULT_CAPS

pytestmark = pytest.mark.root


@pytest.fixture(params=["berth", "runc"])
def rt(request) -> str:
    if request.param != "berth" and oci.binary(request.param) is None:
        pytest.skip(f"{request.param} is not installed (make installs it)")
    return request.param


def until(predicate, what: str, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {limit:g} s: {what}")
        time.sleep(0.01)


def exec_out(m: ContainerManager, ref: str, args: list[str]) -> tuple[int, str]:
    r, w = os.pipe()
    try:
        code = m.exec(ref, args, stdin=os.open(os.devnull, os.O_RDONLY), stdout=w, stderr=w)
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        return code, f.read()


def test_namespaces_caps_and_read_only_root(manager: ContainerManager, rt: str):
    script = ("echo pid=$$; echo host=$(hostname); echo net=$(ls /sys/class/net); "
              "grep CapEff /proc/self/status; touch /probe 2>/dev/null && echo root=rw || echo root=ro")
    c = run(manager, script, hostname="seam-test", read_only=True, runtime=rt)
    assert c["exit_code"] == 0, output(manager, c["id"])
    assert c["runtime"] == rt and manager.inspect(c["id"])["runtime"] == rt  # recorded, shown by inspect
    lines = output(manager, c["id"], "stdout").split()
    assert "pid=1" in lines  # its own pid namespace
    assert "host=seam-test" in lines
    assert "net=lo" in lines  # its own network namespace, only the loopback
    eff = int(lines[lines.index("CapEff:") + 1], 16)
    assert eff == mask(DEFAULT_CAPS)  # Docker's default set and nothing more
    assert "root=ro" in lines


def test_memory_limit_bites(manager: ContainerManager, rt: str):
    c = manager.create("busybox", command=["sh", "-c", "exec tail /dev/zero"], memory=16 * 1024 * 1024, runtime=rt)
    manager.start(c["id"])
    done = manager.wait(c["id"], timeout=120)
    assert done["exit_code"] == 137 and done["oom_killed"] is True


def _freezer_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/freezer{path}/freezer.state").read_text().strip()
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return "FROZEN" if "frozen 1" in Path(f"/sys/fs/cgroup{path}/cgroup.events").read_text() else "THAWED"
    raise AssertionError("no freezer cgroup")


def test_pause_resume_kill_and_exec(manager: ContainerManager, rt: str):
    c = manager.create("busybox", command=["sh", "-c", "echo up; i=0; while :; do i=$((i+1)); echo $i > /n; "
                                                       "usleep 5000; done"], runtime=rt)
    manager.start(c["id"])
    wait_for_line(manager, c["id"], "up")
    pid = manager.inspect(c["id"])["pid"]

    code, out = exec_out(manager, c["id"], ["sh", "-c", "echo in=$(hostname) pid1=$(cat /proc/1/comm); exit 3"])
    assert code == 3 and f"in={c['id'][:12]}" in out and "pid1=sh" in out  # in its namespaces, code passed on

    assert manager.pause(c["id"])["state"] == "paused"
    assert _freezer_state(pid) == "FROZEN"  # the kernel's word, not the runtime's
    assert manager.unpause(c["id"])["state"] == "running"
    assert _freezer_state(pid) == "THAWED"
    upper = Path(manager.inspect(c["id"])["bundle"]).parent
    counter = next(p for p in (upper / "upper" / "n", upper / "rw" / "upper" / "n") if p.exists())
    first = counter.read_text()
    until(lambda: counter.read_text() not in ("", first), "the counter moves again after resume")

    killed = manager.kill(c["id"], "SIGKILL")
    assert killed["state"] == "exited" and killed["exit_code"] == 137
    assert not Path(f"/proc/{pid}").exists()


def test_rootfs_mount_is_the_seams_for_runc_and_gone_after_remove(manager: ContainerManager, state_root: Path,
                                                                     rt: str):
    c = manager.create("busybox", command=["sleep", "1000"], runtime=rt)
    manager.start(c["id"])
    rootfs = str(Path(c["bundle"]) / "rootfs")
    mounted = host_mounts_under(state_root)
    # berth mounts the overlay in the container's own mount namespace; runc needs it on the host
    assert mounted == ([] if rt == "berth" else [rootfs])
    manager.remove(c["id"], force=True)
    assert host_mounts_under(state_root) == []


def test_a_runtime_that_does_not_work_here_is_refused_at_field_runtime(manager: ContainerManager, tmp_path: Path,
                                                                       monkeypatch):
    fake = tmp_path / "crun"
    fake.write_text("#!/bin/sh\necho 'cgroups in hybrid mode not supported, drop all controllers' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(oci, "binary", lambda name: str(fake) if name == "crun" else None)
    monkeypatch.setattr(runtime_probe, "_cache", {})
    with pytest.raises(InvalidConfig) as e:
        manager.create("busybox", command=["true"], runtime="crun")
    assert e.value.field == "runtime" and "hybrid mode not supported" in str(e.value)
    with pytest.raises(InvalidConfig) as e:
        manager.create("busybox", command=["true"], runtime="docker")
    assert e.value.field == "runtime"
    assert manager.list() == []


def test_confined_bind_mounts_need_the_berth_runtime(manager: ContainerManager, tmp_path: Path):
    if oci.binary("runc") is None:
        pytest.skip("runc is not installed (make installs it)")
    (tmp_path / "data").mkdir()
    with pytest.raises(InvalidConfig) as e:
        manager.create("busybox", command=["true"], runtime="runc", mounts=[f"{tmp_path / 'data'}:/data"],
                       bind_roots=[str(tmp_path)])
    assert e.value.field == "runtime"
