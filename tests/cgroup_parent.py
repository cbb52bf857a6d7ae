"""The runtime's default cgroupsPath is /berth/<id>. Deleting a container removes <id> and keeps the shared
parent (as docker keeps /docker), so a test run or a benchmark that made the parent removes it when it ends.
Plain module (no pytest): bench/ uses it too."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

PARENT = "/berth"


def cgroup_dirs(cgroup_path: str) -> list[str]:
    """Existing directories for `cgroup_path` in every mounted hierarchy."""
    from workers.engine.runtime.cgroups import Cgroup

    return [d for d in Cgroup.for_path(cgroup_path).dirs.values() if os.path.isdir(d)]


@contextlib.contextmanager
def parent_removed_if_made() -> Iterator[None]:
    """Remove, on the way out, each /berth directory that did not exist on the way in and is empty by then
    (one still in use, by a container outside this run, is left)."""
    had = set(cgroup_dirs(PARENT))
    try:
        yield
    finally:
        # a child just emptied may stay busy for a moment (its killed processes not yet reaped): a few tries
        deadline = time.monotonic() + 10
        while True:
            left = [d for d in cgroup_dirs(PARENT) if d not in had]
            for d in left:
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            if not any(os.path.isdir(d) for d in left) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
