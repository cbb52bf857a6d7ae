"""`python -m workers.engine` container verbs: run/ps/logs/rm round trip, errors exit 125."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


def berth(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BERTH_LOG_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "workers.engine", "--root", str(root), *args], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def test_run_ps_logs_rm_round_trip(state_root: Path):
    fg = berth(state_root, "run", "--name", "fg", "-e", "WHO=cli", "-h", "clihost", "busybox",
               "sh", "-c", 'echo "hello $WHO from $(hostname)"; echo oops >&2; exit 5')
    assert fg.returncode == 5, fg.stderr
    assert fg.stdout == "hello cli from clihost\n" and fg.stderr == "oops\n"

    bg = berth(state_root, "run", "-d", "--name", "bg", "-m", "64m", "--restart", "on-failure:1", "busybox",
               "sleep", "1000")
    assert bg.returncode == 0, bg.stderr
    cid = bg.stdout.strip()
    assert len(cid) == 64

    ps = berth(state_root, "ps")
    assert "bg" in ps.stdout and "fg" not in ps.stdout and cid[:12] in ps.stdout
    listed = {c["name"]: c for c in json.loads(berth(state_root, "ps", "-a", "--json").stdout)}
    assert listed["fg"]["state"] == "exited" and listed["fg"]["exit_code"] == 5
    assert listed["bg"]["state"] == "running" and listed["bg"]["config"]["memory"] == 64 * 1024 * 1024

    logs = berth(state_root, "logs", "-t", "fg")
    assert logs.stdout.endswith(" hello cli from clihost\n") and logs.stdout[:4].isdigit()
    assert logs.stderr.endswith(" oops\n")
    assert berth(state_root, "logs", "--tail", "0", "fg").stdout == ""
    assert berth(state_root, "logs", "--since", "2100-01-01T00:00:00Z", "fg").stdout == ""
    assert berth(state_root, "logs", "--since", "1h", "fg").stdout == "hello cli from clihost\n"
    bad = berth(state_root, "logs", "--since", "yesterday", "fg")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: invalid --since 'yesterday'")

    refused = berth(state_root, "rm", "bg")
    assert refused.returncode == 125 and refused.stderr.startswith("Error: container bg is running")
    assert berth(state_root, "rm", "-f", "bg", "fg").returncode == 0
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
    assert list((state_root / "containers").iterdir()) == []


def test_errors_exit_125_with_one_line(state_root: Path):
    for args, message in [
        (("run", "-m", "1", "busybox", "true"), "Error: memory limit 1 B is below the minimum of 6 MiB\n"),
        (("run", "nosuch:latest"), "Error: no such image 'nosuch:latest' on this host\n"),
        (("stop", "ghost"), "Error: no such container 'ghost'\n"),
    ]:
        r = berth(state_root, *args)
        assert (r.returncode, r.stderr) == (125, message)
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []


def test_run_rm_removes_the_container(state_root: Path):
    r = berth(state_root, "run", "--rm", "busybox", "echo", "bye")
    assert (r.returncode, r.stdout) == (0, "bye\n")
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
