"""Host jobs."""

from __future__ import annotations

from typing import Any

from workers import agent
from workers.handlers import handler


@handler("host.probe")
def probe(job, report) -> dict[str, Any]:
    """Collect this host's facts, refresh its Host row, and return the facts."""
    report(10, "collecting facts")
    host = agent.beat(job.host.name)
    report(90, "facts recorded")
    return host.facts
