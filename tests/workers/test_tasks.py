"""Job dispatch and the job task's rules, run in-process (the e2e tests run them in real workers)."""

from __future__ import annotations

import subprocess

import pytest
from django.utils import timezone

from containers import jobs
from containers.models import Host, Job
from workers import agent, handlers, tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    return Host.objects.create(name="node-a", last_heartbeat=timezone.now())


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.celery.app.send_task", lambda name, args, queue, **kw: calls.append((name, args, queue)))
    return calls


@pytest.fixture
def unit_handlers():
    """Register handlers for this test only."""
    added = []

    def add(kind, fn):
        handlers.handler(kind)(fn)
        added.append(kind)

    yield add
    for kind in added:
        handlers.HANDLERS.pop(kind, None)


def dead_token() -> str:
    proc = subprocess.Popen(["true"])
    token = agent.process_token(proc.pid)
    proc.wait()
    return token


def test_submit_sends_after_commit_to_the_host_queue(host, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = jobs.submit("host.probe", host, params={"x": 1}, target=("container", "abc"))
    assert sent == []  # nothing leaves before the row is committed
    for cb in callbacks:
        cb()
    assert sent == [("workers.tasks.run_job", [job.pk], "host.node-a")]
    assert (job.state, job.params, job.target_type, job.target_id) == ("queued", {"x": 1}, "container", "abc")


def test_idempotency_key_returns_the_same_job(host, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = jobs.submit("host.probe", host, idempotency_key="k1")
        second = jobs.submit("host.probe", host, idempotency_key="k1")
    assert first.pk == second.pk and Job.objects.count() == 1 and len(sent) == 1


def test_run_job_success_then_not_rerun(host, unit_handlers):
    calls = []

    def ok(job, report):
        calls.append(job.pk)
        report(50, "half way")
        return {"answer": 42}

    unit_handlers("unit.ok", ok)
    job = Job.objects.create(kind="unit.ok", host=host)
    assert tasks.run_job.run(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.state, job.progress, job.result, job.attempts, job.worker) == ("succeeded", 100, {"answer": 42}, 1, "")
    assert job.started and job.finished
    assert tasks.run_job.run(job.pk) == "skipped"  # a redelivered message does not run it again
    assert calls == [job.pk]


def test_run_job_turns_exceptions_into_failed_with_readable_error(host, unit_handlers):
    def boom(job, report):
        raise KeyError("image busybox:latest")

    def user_error(job, report):
        raise tasks.JobError("no space left for layer sha256:abc")

    unit_handlers("unit.boom", boom)
    unit_handlers("unit.user", user_error)
    a = Job.objects.create(kind="unit.boom", host=host)
    b = Job.objects.create(kind="unit.user", host=host)
    tasks.run_job.run(a.pk)
    tasks.run_job.run(b.pk)
    a.refresh_from_db()
    b.refresh_from_db()
    # A bug is told as one, without the exception's name (the traceback is in the worker's log).
    assert (a.state, a.error) == ("failed", "the host hit an unexpected problem while running this unit.boom job; "
                                            "it is a bug in Berth, and the worker's log on that host has the details")
    assert (b.state, b.error) == ("failed", "no space left for layer sha256:abc")


def test_run_job_never_leaves_a_job_running_on_base_exceptions(host, unit_handlers):
    def interrupted(job, report):
        raise KeyboardInterrupt

    unit_handlers("unit.interrupted", interrupted)
    job = Job.objects.create(kind="unit.interrupted", host=host)
    with pytest.raises(KeyboardInterrupt):
        tasks.run_job.run(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and "interrupted" in job.error


def test_cancelled_job_is_not_run(host, unit_handlers):
    unit_handlers("unit.never", lambda job, report: pytest.fail("must not run"))
    job = Job.objects.create(kind="unit.never", host=host)
    assert jobs.cancel(job)
    assert tasks.run_job.run(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.state == "cancelled"


def test_running_job_of_a_live_process_is_not_taken_over(host):
    job = Job.objects.create(kind="unit.x", host=host, state="running", attempts=1, worker=agent.process_token())
    assert tasks.claim(job.pk, "1:1") is None


def test_running_job_of_a_dead_process_is_taken_over(host):
    job = Job.objects.create(kind="unit.x", host=host, state="running", attempts=1, worker=dead_token())
    claimed = tasks.claim(job.pk, agent.process_token())
    assert claimed is not None and claimed.attempts == 2


def test_recover_orphaned_jobs_requeues_then_fails(host, sent, settings, django_capture_on_commit_callbacks):
    settings.BERTH_JOB_MAX_ATTEMPTS = 3
    retry = Job.objects.create(kind="unit.x", host=host, state="running", attempts=1, worker=dead_token())
    last = Job.objects.create(kind="unit.x", host=host, state="running", attempts=3, worker=dead_token())
    alive = Job.objects.create(kind="unit.x", host=host, state="running", attempts=1, worker=agent.process_token())
    with django_capture_on_commit_callbacks(execute=True):
        assert sorted(agent.recover_orphaned_jobs(host)) == sorted([retry.pk, last.pk])
    for j in (retry, last, alive):
        j.refresh_from_db()
    assert retry.state == "queued" and sent == [("workers.tasks.run_job", [retry.pk], "host.node-a")]
    assert last.state == "failed" and last.error.startswith("worker for host node-a died while running this job")
    assert alive.state == "running"


def test_a_job_failed_for_good_runs_its_kinds_given_up_hook_once_after_commit(
        host, sent, settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.BERTH_JOB_MAX_ATTEMPTS = 2
    seen = []
    monkeypatch.setitem(handlers.GIVEN_UP_HOOKS, "unit.x", lambda job: seen.append((job.pk, job.state)))
    retry = Job.objects.create(kind="unit.x", host=host, state="running", attempts=1, worker=dead_token())
    last = Job.objects.create(kind="unit.x", host=host, state="running", attempts=2, worker=dead_token())
    other = Job.objects.create(kind="unit.y", host=host, state="running", attempts=2, worker=dead_token())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert sorted(agent.recover_orphaned_jobs(host)) == sorted([retry.pk, last.pk, other.pk])
    assert seen == []  # not before the failure is committed
    for cb in callbacks:
        cb()
    assert seen == [(last.pk, "failed")]  # not for a re-queued job, nor for a kind without a hook
    assert agent.recover_orphaned_jobs(host) == [] and seen == [(last.pk, "failed")]


def test_a_move_given_up_queues_its_settling_on_its_own_host(host, sent, settings, django_capture_on_commit_callbacks):
    settings.BERTH_JOB_MAX_ATTEMPTS = 2
    move = Job.objects.create(kind="container.move", host=host, state="running", attempts=2, worker=dead_token(),
                              target_type="container", target_id="7", params={"was_running": True})
    with django_capture_on_commit_callbacks(execute=True):
        agent.recover_orphaned_jobs(host)
    move.refresh_from_db()
    settle = Job.objects.get(pk=move.params["settled_by"])
    assert (settle.kind, settle.host, settle.target_id, settle.params) == (
        "container.settle", host, "7", {"given_up": move.pk})
    assert ("workers.tasks.run_job", [settle.pk], "host.node-a") in sent
    assert move.state == "failed" and move.error.endswith(f"job #{settle.pk} settles what it left")


def test_test_only_handlers_are_absent_without_the_env_flag():
    out = subprocess.run(
        [".venv/bin/python", "-c",
         "import django; django.setup(); from workers import handlers; print(handlers.known_kinds())"],
        capture_output=True, text=True, env={"DJANGO_SETTINGS_MODULE": "webapp.settings",
                                             "BERTH_STATE_ROOT": "/nonexistent-berth", "PATH": "/usr/bin:/bin",
                                             "BERTH_SECRET_KEY": "k" * 50},
        check=True,
    )
    assert "host.probe" in out.stdout and "test." not in out.stdout
