"""Job kinds for the test suite only; loaded when BERTH_TEST_HANDLERS=1 (see workers/handlers)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings

from workers.handlers import handler, on_worker_start


@handler("test.fail")
def fail(job, report) -> dict:
    report(30, "about to fail")
    raise RuntimeError(job.params.get("error", "test failure as asked"))


@handler("test.sleep")
def sleep(job, report) -> dict:
    """Sleeps `seconds` on the first `sleep_attempts` attempts (default 1), then succeeds."""
    if job.attempts <= int(job.params.get("sleep_attempts", 1)):
        report(50, "sleeping")
        time.sleep(float(job.params.get("seconds", 60)))
    return {"attempt": job.attempts}


@handler("test.wait_file")
def wait_file(job, report) -> dict:
    """Runs until the file params.path exists (a gate the test opens), then succeeds."""
    report(50, "waiting for the gate")
    gate = Path(job.params["path"])
    while not gate.exists():
        time.sleep(0.05)
    return {"attempt": job.attempts}


@handler("test.steps")
def steps(job, report) -> dict:
    n = int(job.params.get("steps", 4))
    for i in range(1, n + 1):
        report(i * 100 // (n + 1), f"step {i} of {n}")
    return {"steps": n}


@on_worker_start
def mark_start(host) -> None:
    """Leaves a trace in the state root so tests can see start hooks run with the registered host."""
    root = Path(settings.BERTH_STATE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "worker-starts.log", "a") as f:
        f.write(f"{host.name}\n")
