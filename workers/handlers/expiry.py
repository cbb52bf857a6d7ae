"""Export, save and log-download files expire: the worker removes `<state root>/exports/*` older than
settings.BERTH_EXPORT_MAX_AGE (default 24 h) and marks their jobs expired, so a download answers 410 and
the job says why. A pass runs at worker start and then every few minutes in a daemon thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from celery.signals import worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from containers.models import Job
from workers.handlers import common, on_worker_start

log = logging.getLogger(__name__)

DOWNLOAD_KINDS = ("container.export", "image.save", "container.logs")


def max_age() -> float:
    return float(getattr(settings, "BERTH_EXPORT_MAX_AGE", 24 * 3600))


def describe_age(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def expire_exports(host, root: Path | None = None, age: float | None = None,
                   now: float | None = None) -> list[int]:
    """Remove this host's download files older than `age` seconds; returns the ids of the jobs marked."""
    exports = (root or common.state_root()) / "exports"
    age = max_age() if age is None else age
    cutoff = (time.time() if now is None else now) - age
    if not exports.is_dir():
        return []
    removed: dict[str, Path] = {}
    for path in exports.iterdir():
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if st.st_mtime < cutoff and path.is_file() and not path.is_symlink():
            removed[str(path.resolve())] = path
            common.remove_quietly(path)
    marked = []
    if removed:
        jobs = Job.objects.filter(host=host, kind__in=DOWNLOAD_KINDS, state=Job.State.SUCCEEDED)
        for job in jobs.filter(pk__in=[int(p.name.split(".")[0]) for p in removed.values()
                                       if p.name.split(".")[0].isdigit()]):
            result = dict(job.result or {})
            if result.get("path") in removed and not result.get("expired"):
                result["expired"] = True
                message = f"the file expired after {describe_age(age)} and was removed: run the job again"
                Job.objects.filter(pk=job.pk).update(result=result, message=message)
                marked.append(job.pk)
    return marked


class Expirer(threading.Thread):
    def __init__(self, host, interval: float) -> None:
        super().__init__(name="berth-export-expiry", daemon=True)
        self.host, self.interval = host, interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                close_old_connections()
                marked = expire_exports(self.host)
                if marked:
                    log.info("host %s: %d expired download(s) removed", self.host.name, len(marked))
            except Exception:
                log.exception("host %s: export expiry pass failed", self.host.name)
            if self.stopping.wait(self.interval):
                return


_expirer: Expirer | None = None


@on_worker_start
def start_expirer(host) -> None:
    global _expirer
    if _expirer is None or not _expirer.is_alive():
        _expirer = Expirer(host, interval=max(1.0, min(max_age() / 4, 300.0)))
        _expirer.start()


@worker_shutdown.connect
def _stop_expirer(sender=None, **kwargs) -> None:
    if _expirer is not None:
        _expirer.stopping.set()
        _expirer.join(timeout=5)
