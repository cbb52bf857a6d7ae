"""The per-host container monitor: one daemon (a child subreaper) that owns every container's
stdio, writes json-file logs, records exit codes and OOM kills; and its client."""

from workers.engine.monitor.client import MonitorClient, MonitorError

__all__ = ["MonitorClient", "MonitorError"]
