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
