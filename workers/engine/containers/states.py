"""The container-state vocabulary, shared by the engine (its records), the models (Container.state) and the
reporter that copies one onto the other. The web side adds one state of its own, "removing" (a remove job
is queued), which the engine never reports."""

from __future__ import annotations

CREATED = "created"  # made, never started (or reset)
RUNNING = "running"
PAUSED = "paused"  # frozen (cgroup freezer)
EXITED = "exited"  # its process ended; the exit code is known
DEAD = "dead"  # gone without an exit status (the monitor was not running), or lost by the host

ALL = (CREATED, RUNNING, PAUSED, EXITED, DEAD)
ACTIVE = (RUNNING, PAUSED)  # a process exists
STOPPED = (EXITED, DEAD)  # it ran and is over
