"""Fixtures of the handler tests: a Host row, and the events the handlers publish (collected, not sent)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from containers.models import Host


@pytest.fixture
def host(db):
    return Host.objects.create(name="unit-host", last_heartbeat=timezone.now())


@pytest.fixture
def published(monkeypatch):
    got = []
    monkeypatch.setattr("containers.events.publish", got.append)
    return got
