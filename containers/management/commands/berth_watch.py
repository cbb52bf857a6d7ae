"""manage.py berth_watch: the control plane's offline watch (containers/offline_watch.py), until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from containers.offline_watch import Watch


class Command(BaseCommand):
    help = ("Watch hosts' heartbeats: fail jobs that waited too long for an offline host and tell open dashboards "
            "when a host goes offline or comes back (berth_run starts it).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between passes (default BERTH_WATCH_SECONDS)")

    def handle(self, *args, **opts) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        interval = opts["interval"] if opts["interval"] is not None else settings.BERTH_WATCH_SECONDS
        self.stdout.write(f"berth_watch: a pass every {interval:g}s")
        self.stdout.flush()
        Watch().run(interval, stopping)
