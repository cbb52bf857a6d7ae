"""Starts the host's stats sampler (workers/engine/containers/stats_history.py) when the worker starts."""

from __future__ import annotations

import os

from django.conf import settings

from workers.handlers import common, on_worker_start

_sampler = None


@on_worker_start
def start_stats_sampler(host) -> None:
    global _sampler
    if _sampler is not None or os.environ.get("BERTH_STATS_SAMPLER", "1") == "0":
        return
    from workers.engine.containers.stats_history import StatsSampler

    interval = float(os.environ.get("BERTH_STATS_INTERVAL", "2"))
    _sampler = StatsSampler(common.container_manager(), settings.REDIS_URL, interval=interval)
    _sampler.start()
