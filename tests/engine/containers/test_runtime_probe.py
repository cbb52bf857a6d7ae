"""Which runtimes work on this host is probed by running a container, never assumed from what is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import host_tool
from workers.engine.containers import oci, runtime_probe

pytestmark = pytest.mark.root


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(runtime_probe, "_cache", {})


def fake_runtime(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_an_installed_runtime_whose_container_fails_is_not_listed_and_says_why(tmp_path, monkeypatch, fresh):
    crun = fake_runtime(tmp_path, "crun", "echo 'cgroups in hybrid mode not supported, drop all controllers' >&2\n"
                                          "exit 1\n")
    monkeypatch.setattr(oci, "binary", lambda name: crun if name == "crun" else None)
    assert "crun" not in runtime_probe.working()
    assert runtime_probe.problems()["crun"] == "cgroups in hybrid mode not supported, drop all controllers"
    assert runtime_probe.problems()["runc"] == "runc is not installed on this host"


def test_a_runtime_that_runs_the_probe_container_is_listed(tmp_path, monkeypatch, fresh):
    runc = host_tool("runc")
    # a runtime named crun that is really runc: listed because its container ran, not because of its name
    crun = fake_runtime(tmp_path, "crun", f'exec {runc} "$@"\n')
    monkeypatch.setattr(oci, "binary", lambda name: crun if name == "crun" else None)
    assert runtime_probe.working() == ["berth", "crun"]
    assert runtime_probe.problem("crun") is None


def test_berth_and_an_installed_runc_work_on_this_host(fresh):
    """On this machine: berth works; runc works when installed (make installs it)."""
    assert runtime_probe.problem("berth") is None
    if oci.binary("runc"):
        assert runtime_probe.problem("runc") is None


def _probe_cgroups() -> set[str]:
    from workers.engine.runtime.cgroups import hierarchies

    found = set()
    for _key, mnt, _root in hierarchies():
        base = Path(mnt) / "berth"
        if base.is_dir():
            found |= {p.name for p in base.iterdir() if p.name.startswith(runtime_probe.PREFIX)}
    return found


def test_a_prober_killed_mid_probe_leaves_a_cgroup_the_next_probe_removes(tmp_path, fresh):
    """A worker killed -9 while its probe container runs left /berth/berth-probe-* behind, with the container's
    init still in it (the `run` that would delete it died too). The next probe kills what is left and removes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    before = _probe_cgroups()
    # the prober's container sleeps instead of exiting, so the kill lands while it is surely running
    script = ("import json, sys\n"
              "from workers.engine.containers import runtime_probe as rp\n"
              "orig = rp._bundle\n"
              "def slow(d, cid):\n"
              "    b = orig(d, cid)\n"
              "    p = b + '/config.json'\n"
              "    cfg = json.load(open(p)); cfg['process']['args'] = ['/busybox', 'sleep', '60']\n"
              "    json.dump(cfg, open(p, 'w'))\n"
              "    return b\n"
              "rp._bundle = slow\n"
              "print(rp.problem('berth'))\n")
    prober = subprocess.Popen([sys.executable, "-c", script], cwd=str(Path(__file__).resolve().parents[3]),
                              start_new_session=True, stdout=subprocess.DEVNULL)
    name = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and name is None:
            mine = [n for n in _probe_cgroups() - before if n.startswith(f"{runtime_probe.PREFIX}{prober.pid}-")]
            if mine:
                from workers.engine.runtime.cgroups import Cgroup

                if Cgroup.for_path(f"/berth/{mine[0]}").pids():  # the container's init is in it
                    name = mine[0]
            time.sleep(0.01)
        assert name, "the probe container never started"
        os.killpg(prober.pid, signal.SIGKILL)  # the prober and its `run`, as when a worker is killed -9
        prober.wait()
        from workers.engine.runtime.cgroups import Cgroup

        left = Cgroup.for_path(f"/berth/{name}")
        assert left.pids(), "the container's init outlives its prober"
        init_pids = left.pids()
        import tempfile

        dirs = list(Path(tempfile.gettempdir()).glob(f"{runtime_probe.PREFIX}{prober.pid}-*"))
        assert len(dirs) == 1 and (dirs[0] / "bundle" / "config.json").is_file(), "the prober's dir is left"

        assert runtime_probe.problem("berth") is None  # the next probe, in this process
        assert name not in _probe_cgroups()
        assert not dirs[0].exists()
        for pid in init_pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        if prober.poll() is None:
            os.killpg(prober.pid, signal.SIGKILL)
            prober.wait()
        runtime_probe.sweep_stale()
    assert _probe_cgroups() <= before
