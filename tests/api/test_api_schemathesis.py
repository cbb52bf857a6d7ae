"""schemathesis against /api/schema/ of a live server (daphne) for a bounded time."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_schemathesis(api_server, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", api_server.url + "/api/schema/",
         "-H", f"Authorization: Bearer {api_server.token}", "--checks", "all", "--max-examples", "5",
         "--workers", "2", "--seed", "1", "--no-color", "--generation-database", "none",
         "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")],
        capture_output=True, text=True, timeout=170)
    (tmp_path.parent / "st-last.txt").write_text(proc.stdout)
    print(proc.stdout[-20000:])
    print(proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stdout[-8000:]
