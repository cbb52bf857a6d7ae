"""`python -m workers.exec_relay JOB_ID SESSION`: the detached relay of one console session (see
workers/engine/monitor/exec_relay.py), which, when the session ends, writes its exit code into the
container.exec job's result and the audit trail (who, command, when, exit code)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from django.conf import settings

    from workers.engine.monitor.exec_relay import relay

    job_id, sid = int(argv[0]), argv[1]

    def record(info: dict) -> None:
        from containers import audit
        from containers.models import Job

        job = Job.objects.select_related("requested_by").filter(pk=job_id).first()
        if job is None:
            return
        result = dict(job.result or {})
        result.update(status="exited", exit_code=info.get("exit_code"), finished_at=info.get("finished_at"))
        Job.objects.filter(pk=job_id).update(result=result)
        audit.record(None, job.requested_by, "container.exec.end", ("container", job.target_id), "ok",
                     {"job": job_id, "session": sid, "command": (job.params or {}).get("command"),
                      "exit_code": info.get("exit_code"), "started_at": info.get("started_at"),
                      "finished_at": info.get("finished_at")}, via="host")

    relay(str(settings.BERTH_STATE_ROOT), sid, settings.REDIS_URL, on_exit=record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
