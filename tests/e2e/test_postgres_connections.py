"""The control plane on PostgreSQL keeps its connections (issue 18): a connection is a server process and a SCRAM
exchange, so neither an API request nor a job may open one (webapp/database.py). Counted by the server itself:
it logs every connection it authorizes (tests/postgres.py). Runs in `make test`'s PostgreSQL part
(BERTH_TEST_DB=postgres); skipped on SQLite, which has no connections to count."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from containers import jobs
from containers.api.auth import create_token
from containers.models import Job
from tests.conftest import stop_process
from tests.support import start_asgi_server
from webapp.database import APP_NAME, WEB_APP_NAME

pytestmark = [pytest.mark.e2e]


def test_the_web_server_and_the_workers_reuse_their_connections(postgres_server, berth_worker, redis_url, tmp_path,
                                                                 wait_job):
    if postgres_server is None:
        pytest.skip("PostgreSQL only: BERTH_TEST_DB=postgres (make test-e2e-postgres)")
    db = connection.settings_dict["NAME"]
    worker = berth_worker("pg-conns")
    web, port = start_asgi_server(redis_url, tmp_path / "web", tmp_path / "web.log")
    try:
        _, token = create_token(get_user_model().objects.create_user("pg-user"), "t")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"

        def request() -> None:
            r = api.get(f"http://127.0.0.1:{port}/api/v1/jobs", timeout=60)
            assert r.status_code == 200, r.text

        def job() -> None:
            done = wait_job(jobs.submit("test.steps", worker.host, params={"steps": 2}))
            assert done.state == Job.State.SUCCEEDED, done.error

        for _ in range(4):  # warm-up: the web server's pool opens, the worker's pool processes connect
            request()
            job()
        # Counted by the application_name each side gives (webapp/database.py): a thread of the worker that
        # touches the database for the first time while the requests run opens its one connection then.
        web_before = postgres_server.connections_made(db, WEB_APP_NAME)
        worker_before = postgres_server.connections_made(db, APP_NAME)
        assert web_before > 0 and worker_before > 0, \
            "the server's log shows no connection of one side: the counts below would prove nothing"
        for _ in range(10):
            request()
        for _ in range(10):
            job()
        by_web = postgres_server.connections_made(db, WEB_APP_NAME) - web_before
        by_worker = postgres_server.connections_made(db, APP_NAME) - worker_before
        # Per request or per job (conn_max_age=0; Celery's close after each task) this would be 10 or more; a
        # pool process of the worker that took no job in the warm-up, or a thread of its main process, may
        # still open its one.
        assert by_web == 0, f"the web server opened {by_web} connections for 10 API requests"
        assert by_worker <= 2, f"the worker opened {by_worker} connections for 10 jobs"
    finally:
        stop_process(web)
