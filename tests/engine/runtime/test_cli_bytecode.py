"""The runtime's command line, started per container, keeps its compiled modules even where the environment says
not to write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine): the next call reads them instead of compiling
every module again (bench/README.md, "Start faster than runc")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_cli_writes_its_bytecode_once(tmp_path: Path):
    cache = tmp_path / "pycache"  # a prefix of our own: the checkout's __pycache__ is not touched
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)}
    r = subprocess.run([sys.executable, "-m", "workers.engine.runtime", "--root", str(tmp_path / "rt"), "state", "nope"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "container nope does not exist" in r.stderr  # the verb ran, and answered
    written = {p.name.split(".")[0] for p in cache.rglob("*.pyc")}
    assert {"cli", "api", "create", "state", "config"} <= written, written
