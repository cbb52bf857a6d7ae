"""The control plane's offline watch (manage.py berth_watch, started and supervised by berth_run).

Why here and not in Celery beat or in the hosts' workers: a host's offline state needs no writer (it is read
from its last heartbeat, containers/offline.py), but the jobs that time out waiting for it do, and so do the
events that flip open dashboards. A worker cannot be that writer (with every host down, none runs), and beat
would need a worker to run its tasks. This loop needs only the database and Redis, which the control plane has
anyway. It is safe to run several: each change it makes is a conditional update, and its events are idempotent.
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections

from . import offline
from .models import Host

log = logging.getLogger(__name__)


class Watch:
    """One pass: publish what changed for hosts that went offline or came back; fail jobs waited past their time."""

    def __init__(self) -> None:
        self.offline: set[int] | None = None  # ids seen offline at the last pass; None before the first

    def sweep(self) -> list[int]:
        """Returns the ids of the jobs failed in this pass."""
        failed: list[int] = []
        now_offline = set()
        for host in Host.objects.all():
            if host.online:
                if self.offline is not None and host.pk in self.offline:
                    log.info("host %s is back", host.name)
                    offline.publish_all(host)
                continue
            now_offline.add(host.pk)
            if self.offline is None or host.pk not in self.offline:
                log.warning("%s", offline.reason(host))
                offline.publish_all(host)
            for job_id in offline.expire_jobs(host):
                log.warning("job %s failed: %s", job_id, offline.reason(host))
                failed.append(job_id)
        self.offline = now_offline
        return failed

    def run(self, interval: float, stopping: threading.Event) -> None:
        while True:
            try:
                close_old_connections()
                self.sweep()
            except Exception:  # a database or Redis hiccup: the next pass tries again
                log.exception("offline watch: pass failed")
            if stopping.wait(interval):
                return
