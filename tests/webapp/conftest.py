"""Fixtures shared by the web side's tests."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from containers.models import Host, Job
from containers.transfer_model import Transfer


@pytest.fixture
def relay(settings, tmp_path) -> Transfer:
    """A live relay for a running receive job on a host, its file under tmp_path (containers/transfer_relay.py)."""
    settings.BERTH_TRANSFER_DIR = tmp_path
    host = Host.objects.create(name="far-away")
    job = Job.objects.create(kind="container.receive", host=host, state=Job.State.RUNNING)
    return Transfer.objects.create(id=uuid.uuid4(), kind=Transfer.Kind.RELAY, host=host, job=job,
                                   expires=timezone.now() + timedelta(hours=1))
