"""The fault tests' pause point (workers/failpoint.py): off without its variable, and with it a job stops exactly
where its kind's rule says, telling so in a file, until its process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from workers import failpoint

REPO = Path(__file__).resolve().parents[2]


def job(kind: str, pk: int = 7) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, pk=pk)


def test_rules_match_their_kind_point_and_text(tmp_path):
    (tmp_path / "image.pull").write_text("report recording\n")
    (tmp_path / "container.stop").write_text("finish")
    d = str(tmp_path)
    assert failpoint.should_hold(d, job("container.stop"), "finish")
    assert not failpoint.should_hold(d, job("container.stop"), "report", "stopping c")
    assert failpoint.should_hold(d, job("image.pull"), "report", "pulled x: recording y:1")
    assert not failpoint.should_hold(d, job("image.pull"), "report", "downloaded 1.0 MB of 2.0 MB")
    assert not failpoint.should_hold(d, job("image.pull"), "finish")
    assert not failpoint.should_hold(d, job("image.push"), "finish"), "no rule for the kind"
    assert failpoint.rule(d, "../image.pull") is None and failpoint.rule(d, ".hidden") is None


def test_without_the_variable_nothing_holds(tmp_path, monkeypatch):
    (tmp_path / "container.stop").write_text("finish")
    monkeypatch.delenv(failpoint.ENV, raising=False)
    failpoint.hold(job("container.stop"), "finish")  # returns: off by default
    assert list(tmp_path.iterdir()) == [tmp_path / "container.stop"]


def test_a_held_job_says_so_and_waits_until_killed(tmp_path):
    (tmp_path / "container.stop").write_text("finish")
    code = ("from types import SimpleNamespace as S; from workers import failpoint; "
            "failpoint.hold(S(kind='container.stop', pk=42), 'finish'); print('passed')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, failpoint.ENV: str(tmp_path), "PYTHONPATH": str(REPO)})
    try:
        held = tmp_path / "held.42"
        deadline = time.monotonic() + 60
        while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held.read_text().split()[:2] == [str(proc.pid), "finish"]
        assert proc.poll() is None, "it waits"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    assert out == "" and proc.returncode == -signal.SIGKILL
