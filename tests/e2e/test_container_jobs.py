"""Container jobs end to end: real redis-server, real Celery workers (one state root per host), the real
engine, runtime and monitor. The Container rows must follow the host without anyone asking (the state
reporter), survive a worker killed with SIGKILL, and bad input must leave nothing behind.

Every container and monitor a test made is removed by id/PID at the end, even when the test fails."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from containers import jobs, services
from containers.models import Container, Image, Job
from tests.support import berth_cgroups, clean_state_root
from tests.transfers import download_of, submit_upload

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LONG = ["sh", "-c", "sleep 600"]


@pytest.fixture(scope="module", autouse=True)
def _no_cgroup_parent_left() -> Iterator[None]:
    """Containers' cgroups go with them; the shared parent goes too if these tests made it (and it is
    empty; in use by anything else it stays)."""
    had = berth_cgroups()
    yield
    for d in berth_cgroups() - had:
        with contextlib.suppress(OSError):
            os.rmdir(d)


@pytest.fixture
def host_worker(berth_worker):
    """berth_worker, plus cleanup: workers stopped first (no restart policy acts meanwhile), then every
    container and the monitor of each state root used."""
    handles = []

    def start(name: str, state_root=None, env=None, **kw):
        handle = berth_worker(name, state_root=state_root, env=env, **kw)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.discard()
    for root in {h.state_root for h in handles}:
        clean_state_root(Path(root))


def seed(worker, wait_job) -> Image:
    job = wait_job(jobs.submit("image.seed", worker.host, params={}))
    assert job.state == Job.State.SUCCEEDED, job.error
    return Image.objects.get(host=worker.host, name="busybox", tag="latest")


@pytest.fixture
def owner(transactional_db):
    """Who asks: a signed-up user, not a superuser (every container below is made through the services)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("maker", password="pw-maker-123")


def create(worker, name: str, user, *, image: str = "busybox:latest", start: bool = True,
           **fields) -> tuple[Container, Job]:
    """What the API and the dashboard do: containers.services.create_container (the row, the audit, the job)."""
    return services.create_container(user, host=worker.host, image=image, name=name, start=start, **fields)


def action(row: Container, kind: str, wait_job, **params) -> Job:
    job = wait_job(services.container_action(row.owner, row, kind, params=params))
    assert job.state == Job.State.SUCCEEDED, f"{kind}: {job.error}"
    return job


def ask(row: Container, kind: str, wait_job, **params) -> Job:
    """A container action through the services, waited for whatever its end."""
    return wait_job(services.container_action(row.owner, row, kind, params=params))


def row_where(wait_for, row: Container, what: str, timeout: float = 60, **want) -> Container:
    def reached():
        row.refresh_from_db()
        return all(getattr(row, k) == v for k, v in want.items())

    wait_for(reached, timeout=timeout, what=f"{row.name}: {what} (want {want})", interval=0.2)
    return row


def log_text(job: Job) -> str:
    assert job.state == Job.State.SUCCEEDED, job.error
    return download_of(job).read_text()  # the worker pushed it to this process's staging dir


def test_lifecycle_logs_and_states_reported_without_asking(host_worker, owner, wait_job, wait_for, live_redis):
    w = host_worker("ctr-life")
    seed(w, wait_job)

    # 1. Lines printed by a running container reach its Redis stream and the logs job.
    script = "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; exec sleep 600"
    printer, job = create(w, "printer", owner, command=["sh", "-c", script])
    # 2. Containers that end by themselves: an exit code, an OOM kill, and a restart policy.
    quitter, qjob = create(w, "quitter", owner, command=["sh", "-c", "sleep 1; exit 3"])
    hog, hjob = create(w, "hog", owner, memory=16 << 20, memory_swap=16 << 20,
                       command=["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=96M count=1"])
    flaky, fjob = create(w, "flaky", owner, restart_policy="on-failure:2", command=["sh", "-c", "echo try; exit 1"])
    for j in (job, qjob, hjob, fjob):
        j = wait_job(j)
        assert j.state == Job.State.SUCCEEDED, j.error
    assert job.result["engine_id"] == printer.engine_id
    row_where(wait_for, printer, "running after create with start", state="running")
    assert printer.started is not None

    stream = f"berth:logs:{printer.engine_id}"
    r = redis.Redis.from_url(live_redis, decode_responses=True)
    entries = wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(r.xrange(stream)),
                       what=f"six entries in {stream}")
    # Order holds within a stream (two pipes may be read in either order when both are ready).
    assert [e["log"] for _, e in entries if e["stream"] == "stdout"] == [f"line-{i}\n" for i in range(1, 6)]
    assert [e["log"] for _, e in entries if e["stream"] == "stderr"] == ["oops\n"]
    assert len(entries) == 6 and all(e["time"].endswith("Z") for _, e in entries)

    logs = ask(printer, "logs", wait_job, timestamps=False)
    assert sorted(log_text(logs).splitlines()) == [f"line-{i}" for i in range(1, 6)] + ["oops"]
    assert logs.result["filename"] == "printer.log" and logs.result["content_type"].startswith("text/plain")
    assert "path" not in logs.result and not (w.state_root / "exports").exists()
    # The handler's stream filter (no service asks for it yet), as a job delivered to the host.
    tail = wait_job(jobs.submit("container.logs", w.host, target=printer, requested_by=owner,
                                params={"tail": 2, "timestamps": True, "stderr": False}))
    lines = log_text(tail).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["line-4", "line-5"]
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)

    # pause / unpause / restart through jobs; the row follows each.
    assert action(printer, "pause", wait_job).result["state"] == "paused"
    row_where(wait_for, printer, "paused", state="paused")
    assert action(printer, "unpause", wait_job).result["state"] == "running"
    row_where(wait_for, printer, "running again", state="running")
    first_start = printer.started
    assert action(printer, "restart", wait_job, timeout=1).result["state"] == "running"
    wait_for(lambda: (printer.refresh_from_db(), printer.started > first_start)[1], what="a new start time")
    assert printer.state == "running"

    # 3. stop: PID 1 (sleep) has no SIGTERM handler, so SIGKILL follows after the timeout.
    stopped = action(printer, "stop", wait_job, timeout=1)
    assert stopped.result["state"] == "exited" and stopped.result["exit_code"] == 137
    row_where(wait_for, printer, "exited after stop", state="exited", exit_code=137)
    assert printer.finished is not None and printer.finished >= printer.started

    # Nobody asked about these: the reporter wrote them.
    row_where(wait_for, quitter, "exited by itself", state="exited", exit_code=3)
    assert quitter.status_message == "exited with code 3" and not quitter.oom_killed
    row_where(wait_for, hog, "OOM killed", state="exited", oom_killed=True)
    assert hog.exit_code == 137 and "OOM" in hog.status_message
    row_where(wait_for, flaky, "two restarts by policy, then exited", state="exited", restart_count=2)
    assert flaky.exit_code == 1
    flaky_log = ask(flaky, "logs", wait_job)
    assert log_text(flaky_log) == "try\n" * 3

    # Start again and remove with force: the row goes, the host forgets it.
    action(printer, "start", wait_job)
    row_where(wait_for, printer, "running again", state="running")
    action(printer, "remove", wait_job, force=True)
    assert not Container.objects.filter(pk=printer.pk).exists()
    assert not (w.state_root / "containers" / printer.engine_id).exists()


def test_export_import_on_a_second_host_and_commit(host_worker, owner, wait_job, wait_for, tmp_path):
    user = owner
    a = host_worker("ctr-a")
    b = host_worker("ctr-b")
    seed(a, wait_job)

    writer, job = create(a, "writer", user,
                         command=["sh", "-c", "mkdir -p /srv && echo written-on-A > /srv/note.txt"])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, writer, "exited after writing", state="exited", exit_code=0)

    # export on A → upload → image.import on B → a container on B sees the file.
    export = ask(writer, "export", wait_job)
    assert export.state == Job.State.SUCCEEDED, export.error
    tar = download_of(export)
    assert tar.stat().st_size == export.result["size"] and not (a.state_root / "exports").exists()
    assert export.result["filename"] == "writer.tar" and export.result["content_type"] == "application/x-tar"
    imp, _ = submit_upload("image.import", b.host, tar.read_bytes(), requested_by=user, ref="from-a:v1")
    imp = wait_job(imp)
    assert imp.state == Job.State.SUCCEEDED, imp.error
    assert Image.objects.get(pk=imp.result["image_id"]).host_id == b.host.pk
    reader, job = create(b, "reader", user, image="from-a:v1", command=["cat", "/srv/note.txt"])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, reader, "exited after cat", state="exited", exit_code=0)
    out = ask(reader, "logs", wait_job)
    assert log_text(out) == "written-on-A\n"

    # commit on A → a new image owned by who asked → a container from it shows the change.
    commit = ask(writer, "commit", wait_job, ref="noted:v1", author="maker", message="with a note",
                 changes=['CMD ["cat", "/srv/note.txt"]'], team_id=None, shared=False)
    assert commit.state == Job.State.SUCCEEDED, commit.error
    img = Image.objects.get(pk=commit.result["image_id"])
    assert (img.name, img.tag, img.owner_id, img.host_id) == ("noted", "v1", user.pk, a.host.pk)
    assert img.digest == commit.result["digest"] and len(img.layers) == 2
    assert img.config["history"][-1]["comment"] == "with a note"
    assert img.config["config"]["Cmd"] == ["cat", "/srv/note.txt"]
    rerun, job = create(a, "rerun", user, image="noted:v1")  # the committed CMD runs
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, rerun, "exited after the committed CMD", state="exited", exit_code=0)
    assert log_text(ask(rerun, "logs", wait_job)) == "written-on-A\n"


def test_worker_killed_running_containers_survive_and_exits_meanwhile_are_recorded(
        host_worker, owner, wait_job, wait_for, tmp_path):
    from workers.engine.containers import ContainerManager

    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    # The host's admin lets non-superusers bind-mount under this dir; the host reports it in its facts.
    w = host_worker("ctr-crash", env={"BERTH_BIND_MOUNT_ROOTS": str(signal_dir)})
    seed(w, wait_job)
    w.host.refresh_from_db()
    assert w.host.facts.get("bind_roots") == [str(signal_dir)]
    keeper, kjob = create(w, "keeper", owner, command=LONG)
    waiter, wjob = create(w, "waiter", owner, mounts=[f"{signal_dir}:/signal"],
                          command=["sh", "-c", "while [ ! -e /signal/go ]; do sleep 0.1; done; exit 7"])
    lost, ljob = create(w, "lost", owner, command=LONG)
    for j in (kjob, wjob, ljob):
        assert wait_job(j).state == Job.State.SUCCEEDED, j.error
    for row in (keeper, waiter, lost):
        row_where(wait_for, row, "running", state="running")
    pid = ContainerManager(w.state_root).inspect(keeper.engine_id)["pid"]
    ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]

    w.kill9()
    (signal_dir / "go").touch()
    exit_file = w.state_root / "containers" / waiter.engine_id / "exit.json"
    wait_for(exit_file.exists, what="the waiter to exit while no worker runs")
    waiter.refresh_from_db()
    assert waiter.state == "running", "nobody could have recorded it: the worker is dead"
    ContainerManager(w.state_root).remove(lost.engine_id, force=True)  # behind Berth's back

    host_worker("ctr-crash", state_root=w.state_root)
    row_where(wait_for, waiter, "exit recorded by reconcile", state="exited", exit_code=7)
    row_where(wait_for, lost, "a row the host no longer knows marked dead", state="dead")
    assert "no longer has this container" in lost.status_message
    keeper.refresh_from_db()
    assert keeper.state == "running"
    assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19] == ticks, "same process"
    assert ContainerManager(w.state_root).inspect(keeper.engine_id)["pid"] == pid
    # The create job delivered again (as after a crash mid-job) adopts the container instead of failing.
    again = wait_job(jobs.submit("container.create", w.host, target=keeper, requested_by=owner, params=kjob.params))
    assert again.state == Job.State.SUCCEEDED, again.error
    assert again.result == {"container_id": keeper.pk, "engine_id": keeper.engine_id, "state": "running"}
    assert ContainerManager(w.state_root).inspect(keeper.engine_id)["pid"] == pid
    # The new worker serves jobs for the survivor.
    stopped = action(keeper, "stop", wait_job, timeout=1)
    assert stopped.result["state"] == "exited"


def test_bad_input_fails_readably_and_leaves_nothing(host_worker, owner, wait_job, wait_for):
    from containers import namespaces
    from workers.engine.containers import ContainerManager

    w = host_worker("ctr-bad")
    seed(w, wait_job)
    mgr = ContainerManager(w.state_root)
    # Made on the host, not via Berth, under the engine name the owner's "taken" gets: only the host knows.
    taken = mgr.create("busybox:latest", name=namespaces.engine_name(namespaces.of_user(owner.pk), "taken"),
                       command=["true"])
    before = sorted(p.name for p in (w.state_root / "containers").iterdir())

    # Refused by the services before any row or job: the error names the field.
    refused = [  # (row name, fields, words in the message, code, field)
        ("no-image", {"image": "nosuch:latest"}, "nosuch", "no_such_image", "image"),
        ("tiny", {"memory": 1}, "memory", "invalid", "memory"),
        ("future", {"cap_add": ["NET_ADMIN"]}, "not supported yet", "not_supported", "cap_add"),
    ]
    for name, fields, words, code, field in refused:
        image = fields.pop("image", "busybox:latest")
        with pytest.raises(services.ServiceError) as caught:
            create(w, name, owner, image=image, command=["true"], **fields)
        assert (caught.value.code, caught.value.field) == (code, field), caught.value.message
        assert words in caught.value.message, caught.value.message
    assert not Container.objects.exists() and not Job.objects.filter(kind="container.create").exists()

    # Refused by the host: the job fails readably, and the row it made goes.
    row, job = create(w, "taken", owner, command=["true"])
    job = wait_job(job)
    assert job.state == Job.State.FAILED
    assert "taken" in job.error and "Traceback" not in job.error, job.error
    assert (job.error_code, job.error_field) == ("name_taken", "name"), job.error
    assert not re.match(r"^[A-Z][A-Za-z]+: ", job.error), f"no exception class name: {job.error}"
    assert not Container.objects.filter(pk=row.pk).exists(), "the row is gone"
    assert sorted(p.name for p in (w.state_root / "containers").iterdir()) == before
    assert mgr.inspect(taken["id"])["id"] == taken["id"], "the host's own container is untouched"
    assert not Container.objects.exists()

    # A container the host lost (removed behind Berth's back) shows dead, with the reason.
    ghost, job = create(w, "ghost", owner, command=LONG)
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row_where(wait_for, ghost, "running", state="running")
    mgr.remove(ghost.engine_id, force=True)
    failed = ask(ghost, "stop", wait_job, timeout=1)
    assert failed.state == Job.State.FAILED and "no longer has this container" in failed.error
    row_where(wait_for, ghost, "dead", state="dead")
    assert "no longer has this container" in ghost.status_message
