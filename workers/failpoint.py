"""Pause points for the fault tests, off unless the worker's environment sets BERTH_FAILPOINTS to a directory.

With it set, a job of kind K for which the file <dir>/K exists stops at the point that file names:
`finish` (its handler returned, its end not yet recorded) or `report TEXT` (its first progress report whose
message holds TEXT). It writes <dir>/held.<job id> (its PID and where it stopped) and waits there until its
process is killed. This is how tests/e2e/test_worker_killed_per_kind.py kills a worker inside each handler at a
known step rather than after a sleep. Without the variable every call returns at once and reads nothing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

ENV = "BERTH_FAILPOINTS"


def rule(directory: str, kind: str) -> tuple[str, str] | None:
    """(point, text) of the rule file for `kind`, or None (no file, or a kind that is not a plain name)."""
    if not kind or "/" in kind or kind.startswith("."):
        return None
    try:
        text = (Path(directory) / kind).read_text().strip()
    except OSError:
        return None
    point, _, match = text.partition(" ")
    return point, match.strip()


def should_hold(directory: str, job: Any, point: str, message: str = "") -> bool:
    found = rule(directory, job.kind)
    if found is None or found[0] != point:
        return False
    return not found[1] or found[1] in message


def hold(job: Any, point: str, message: str = "") -> None:
    """Stop here for good if a fault test asked for this job kind at this point (see the module's text)."""
    directory = os.environ.get(ENV)
    if not directory or not should_hold(directory, job, point, message):
        return
    Path(directory, f"held.{job.pk}").write_text(f"{os.getpid()} {point} {message}\n")
    threading.Event().wait()  # until the test kills this process
