"""A worker imports its handlers and the engine modules they use before its pool forks (workers/handlers
preload, on Celery's worker_init): a fresh job process's first container job imported 216 modules (pyroute2's
among them) while the job ran."""

from __future__ import annotations

import subprocess
import sys

from celery.signals import worker_init

from tests.support import REPO


def test_the_worker_preloads_before_its_pool_forks():
    from workers import tasks

    assert any(ref() is tasks._on_worker_init for _, ref in worker_init.receivers)


def test_preload_imports_every_handler_and_the_engine_modules_they_use():
    script = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'webapp.settings');"
        "os.environ.setdefault('BERTH_SECRET_KEY', 'x'); import django; django.setup();"
        "from workers import handlers; handlers.preload();"
        "missing = [m for m in handlers.PRELOAD if m not in sys.modules];"
        "kinds = {'container.move', 'container.receive', 'host.blobs', 'container.create'} - set(handlers.HANDLERS);"
        "print(missing, sorted(kinds))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[] []"
