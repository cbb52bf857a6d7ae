"""Jobs whose messages the broker lost, or never took, are sent again once it is back (issue 16: redis-server
killed while jobs are in flight). The whole path with a killed redis-server: tests/browser/test_redis_killed.py."""

from __future__ import annotations

import pytest

from containers import jobs
from containers.models import Host, Job
from tests.conftest import _point_celery_at
from tests.support import dead_port
from workers.agent import BrokerWatch


def test_back_after_an_outage_or_a_restart_and_not_otherwise():
    answers = iter(["run-a", "run-a", None, None, "run-a", "run-a", "run-b", "run-b"])
    watch = BrokerWatch(lambda: next(answers))
    assert [watch.came_back() for _ in range(7)] == [False, False, False, True, False, True, False]
    down_at_start = BrokerWatch(iter([None, "run-a", "run-a"]).__next__)
    assert [down_at_start.came_back(), down_at_start.came_back()] == [True, False]


@pytest.mark.django_db(transaction=True)
def test_a_job_submitted_while_the_broker_is_down_stays_queued_without_an_error():
    from webapp.celery import app

    host = Host.objects.create(name="brokerless")
    before = app.conf.broker_url
    with dead_port() as port:
        _point_celery_at(f"redis://127.0.0.1:{port}/0")
        try:
            job = jobs.submit("test.steps", host, params={"steps": 1})  # sent on commit: refused, said in the log
        finally:
            _point_celery_at(before)
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
