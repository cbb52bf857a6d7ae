"""The Celery app. Each host's worker consumes the queue `host.<name>`; see workers/tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
# workers is not a Django app, so autodiscovery would miss it.
app.conf.imports = ("workers.tasks",)
