"""Fixtures for the monitor tests: a monitor daemon per test under its own state root, run
against runc and against Berth's runtime. Teardown deletes every container through the runtime
and stops the daemon by the PID in its pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools import host_tool
from workers.engine.monitor import MonitorClient

REPO = Path(__file__).resolve().parents[3]


class MonitorHarness:
    def __init__(self, root: Path, runtime: str):
        self.root = root
        self.runtime = runtime
        self.client = MonitorClient(root)
        self.ids: list[str] = []

    @property
    def runtime_cmd(self) -> list[str] | None:
        if self.runtime == "runc":
            return [host_tool("runc"), "--root", str(self.root / "runc")]
        return [sys.executable, "-m", "workers.engine.runtime", "--root", str(self.root / "runtime")]

    def runtime_call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run([*self.runtime_cmd, *args], capture_output=True, text=True, check=check,
                              env=env, timeout=60)

    def start(self, cid: str, bundle, **kw) -> dict:
        self.ids.append(cid)
        return self.client.start_container(cid, bundle.path, runtime_cmd=self.runtime_cmd, **kw)

    def log_entries(self, cid: str) -> list[dict]:
        import json

        path = self.root / "containers" / cid / "logs" / "container.log"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def exit_record(self, cid: str) -> dict:
        import json

        return json.loads((self.root / "containers" / cid / "exit.json").read_text())


def stop_pid(pid: int | None) -> None:
    if not pid:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(200):
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                return
            time.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(params=["runc", "berth"])
def monitor(request, tmp_path_factory) -> Iterator[MonitorHarness]:
    if request.param == "runc":
        host_tool("runc")  # skip (saying why) before starting anything
    # A short path: the monitor's unix socket path must stay under 108 bytes.
    root = tmp_path_factory.mktemp("mon")
    h = MonitorHarness(root, request.param)
    h.client.ensure_running()
    try:
        yield h
    finally:
        for cid in h.ids:
            h.runtime_call("delete", "--force", cid, check=False)
        for pid in (h.client.pid(), h.client.holder_pid()):  # the monitor, then its holder
            stop_pid(pid)
