"""Fixtures for the container manager tests: a ContainerManager per test on its own short state
root with busybox:latest imported. Teardown works even when a test fails: every container's
processes are killed by pid (runtime state and monitor records), its cgroup removed by path, the
monitor stopped by the pid in its pid file, networking dismantled through the engine (netavark's bridges
and rules live outside the root), and the root deleted."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import cleanup_cgroup, host_mounts_under
from tests.engine.monitor.conftest import stop_pid
from workers.engine.containers import ContainerManager
from workers.engine.images.base import ensure_base_images
from workers.engine.images.store import ImageStore
from workers.engine.net import NetworkManager

REPO = Path(__file__).resolve().parents[3]


def _pids_of(root: Path) -> set[int]:
    pids = set()
    for path in list((root / "runtime").glob("*/state.json")) + list((root / "monitor" / "containers").glob("*.json")):
        try:
            pid = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            pids.add(int(pid))
    return pids


def teardown_root(root: Path) -> None:
    """Remove everything a test's manager made under `root`, by pid and by path."""
    ids = {p.name for p in (root / "containers").glob("*") if p.is_dir()}
    ids |= {p.name for p in (root / "runtime").glob("*") if p.is_dir()}
    for pid in _pids_of(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for cid in ids:
        cleanup_cgroup(f"/berth/{cid}")
    for name in ("monitor.pid", "holder.pid"):  # the monitor, then the holder that keeps its pipes
        try:
            stop_pid(int((root / "monitor" / name).read_text().strip()))
        except (OSError, ValueError):
            pass
    if (root / "net" / "networks").is_dir():  # bridges and firewall rules are the machine's: netavark undoes them
        try:
            NetworkManager(root).dismantle()
        except Exception as e:  # noqa: BLE001 - report, and remove the rest
            print(f"cleanup: networking of {root} not dismantled: {e}")
    for mp in sorted(host_mounts_under(root), reverse=True):
        os.system(f"umount -l '{mp}'")  # noqa: S605 - a path we made; only after a failed test
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    # short: the monitor's socket path must stay under 108 bytes
    root = tmp_path_factory.mktemp("cm")
    ensure_base_images(ImageStore(root))
    try:
        yield root
    finally:
        teardown_root(root)


@pytest.fixture
def manager(state_root: Path) -> ContainerManager:
    return ContainerManager(state_root)


@pytest.fixture
def instant_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy restarts without backoff: a restart the policy decides on happens at the second supervise pass
    after the exit is seen (the first schedules it), so "no restart happens" is checked by counting passes,
    not by a wall-clock window that a backoff could outlast. The backoff values have their own unit test."""
    from workers.engine.containers import restart

    monkeypatch.setattr(restart, "backoff", lambda restart_count: 0.0)
