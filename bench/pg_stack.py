"""bench/pg.py's runner for one database: Berth's whole stack on DATABASE_URL (redis, the ASGI web server, one
Celery worker; bench/console_web.py's FullStack), then `--runs` times POST /api/v1/containers (busybox, sleep,
network none) over HTTP with an API token and wait until the Container row says running. Prints one JSON line:
each run's milliseconds with its parts (the API's answer; the job's wait in the queue and its run, from the Job
row), and the SQL statements of one API create (counted in this process through Django's test client) and of
each container.create job (counted by the worker: workers/tasks.py logs them)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.console_web import FullStack, wait_until  # noqa: E402


class ApiStack(FullStack):
    def _up(self) -> None:
        self.host = self._up_base()  # sets up Django: the imports below need its settings
        from django.contrib.auth import get_user_model

        from containers.api.auth import create_token

        self.lead = get_user_model().objects.create_user("bench-api")
        _, self.token = create_token(self.lead, "bench")


def create_body(name: str, host: str) -> dict:
    return {"image": "busybox:latest", "host": host, "name": name, "command": ["sleep", "100000"],
            "networks": ["none"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--show-sql", action="store_true", help="print the API create's statements to stderr")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    stack = ApiStack(args.work, args.database_url)
    try:
        import requests
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from containers import services
        from containers.models import Container, Job

        session = requests.Session()  # one keep-alive connection, as an API client would hold
        session.headers["Authorization"] = f"Bearer {stack.token}"
        runs, job_ids = [], []
        for i in range(args.runs + 1):  # the first is a warm-up (imports, first connections), not reported
            t0 = time.perf_counter()
            r = session.post(f"http://{stack.base}/api/v1/containers", json=create_body(f"b{i}", stack.host_name),
                             timeout=60)
            t_api = time.perf_counter()
            if r.status_code != 202:
                raise RuntimeError(f"POST /api/v1/containers: {r.status_code} {r.text[:500]}")
            pk, job_id = r.json()["container"]["id"], r.json()["job"]["id"]
            row = Container.objects.filter(pk=pk)
            wait_until(lambda row=row: row.values_list("state", flat=True).first() == "running", 60,
                       "the container to run", interval=0.002)
            t_run = time.perf_counter()
            job = stack.wait_job(Job.objects.get(pk=job_id))
            queued = (job.started - job.created).total_seconds() * 1000
            ran = (job.finished - job.started).total_seconds() * 1000
            if i:
                runs.append({"ms": (t_run - t0) * 1000, "api_ms": (t_api - t0) * 1000, "queue_ms": queued,
                             "job_ms": ran})
                job_ids.append(job_id)
            stack.wait_job(services.container_action(stack.lead, Container.objects.get(pk=pk), "remove",
                                                     params={"force": True}))
        # The API create's statements, counted in this process (same code, same database, no HTTP).
        client = Client(HTTP_AUTHORIZATION=f"Bearer {stack.token}", HTTP_HOST="127.0.0.1")
        with CaptureQueriesContext(connection) as api_queries:
            r = client.post("/api/v1/containers", create_body("counted", stack.host_name), content_type="application/json")
        if r.status_code != 202:
            raise RuntimeError(f"counted POST: {r.status_code} {r.content[:300]!r}")
        counted = stack.wait_job(Job.objects.get(pk=r.json()["job"]["id"]))
        stack.wait_job(services.container_action(stack.lead, Container.objects.get(pk=r.json()["container"]["id"]),
                                                 "remove", params={"force": True}))
        if args.show_sql:
            for q in api_queries.captured_queries:
                print(f"  api {q['time']} {q['sql'][:200]}", file=sys.stderr)
        log = stack.worker.log()
        per_job = {int(m[0]): int(m[1]) for m in re.findall(r"job (\d+): \w+ in \d+ ms, (\d+) queries", log)}
        print(json.dumps({"runs": runs, "api_queries": len(api_queries.captured_queries),
                          "job_queries": [per_job.get(j) for j in [*job_ids, counted.pk]],
                          "vendor": connection.vendor}))
    finally:
        stack.close()


if __name__ == "__main__":
    main()
