"""The runtime's command line, started per container, keeps its compiled modules even where the environment says
not to write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine): the next call reads them instead of compiling
every module again (bench/README.md, "Start faster than runc")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.engine.runtime import command as runtime_command

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("how", ["-m", "by path (runtime.command())"])
def test_the_cli_writes_its_bytecode_once(tmp_path: Path, how: str):
    cache = tmp_path / "pycache"  # a prefix of our own: the checkout's __pycache__ is not touched
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)}
    cmd = [sys.executable, "-m", "workers.engine.runtime"] if how == "-m" else runtime_command()
    r = subprocess.run([*cmd, "--root", str(tmp_path / "rt"), "state", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "container nope does not exist" in r.stderr  # the verb ran, and answered
    written = {p.name.split(".")[0] for p in cache.rglob("*.pyc")}
    assert {"cli", "api", "create", "state", "config"} <= written, written
