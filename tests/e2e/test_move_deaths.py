"""A worker killed -9 in the middle of a move (issue 18): never lost, never two. Two hosts on this machine (real
Celery workers, redis-server, engine, monitor, netavark), the control plane's HTTP transfers through a relay that
holds a transfer at a known byte (tests/gate_proxy.py), so each kill lands in a known step of the chain:

- the source's worker killed while it pushes the pack (its container stopped by the move): when it comes back the
  move is given up and the container runs on the source again, with its files;
- the source's worker killed while the target unpacks (the whole pack streamed): the target finishes, and when
  the source comes back the move is finished (the source removed): the container runs on the target only;
- the target's worker killed while it unpacks: the move fails once the target is offline (8 s here; nothing else
  ends the wait before BERTH_MOVE_TIMEOUT's hour) with the source running again, and the target's next worker
  removes the half-made container;
- the source's worker killed on every attempt (BERTH_JOB_MAX_ATTEMPTS, 2 here): the move is given up and settled
  (workers/handlers/move_settle.py): the container stays on the source, stopped, and nothing stays on the target;
- the target's pool process killed on every attempt of its receive: the source gives back (its container runs
  again) and the target removes the container it had made and started, so it never runs on two hosts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from containers import services
from containers.management.commands.berth_run import descendants
from containers.models import Container, Job, Volume
from containers.transfer_model import Transfer
from tests.e2e.test_container_jobs import host_worker, owner, row_where, seed  # noqa: F401
from tests.e2e.test_move_e2e import engine_state, get, start_web
from tests.gate_proxy import GateProxy

pytestmark = [pytest.mark.e2e, pytest.mark.root]

KiB = 1024
OFFLINE_AFTER = "8"  # 8 of the tests' 1 s heartbeats (15 s by default)
ATTEMPTS = "2"  # BERTH_JOB_MAX_ATTEMPTS: two deaths spend a job's attempts


@pytest.fixture
def proxy(live_server):
    gate = GateProxy(urlsplit(live_server.url).port)
    yield gate
    gate.close()


def env(proxy: GateProxy) -> dict[str, str]:
    return {"BERTH_CONTROL_URL": proxy.url, "BERTH_HOST_OFFLINE_AFTER": OFFLINE_AFTER}


def both_files(row: Container) -> tuple[str, str]:
    return get(row, "/www/log"), get(row, "/data/log")


def state_on(worker, row: Container) -> str:
    """The container's state in the host's engine (its worker may be dead)."""
    from workers.engine.containers import ContainerManager

    return ContainerManager(worker.state_root).inspect(row.engine_id)["state"]


def test_a_source_killed_mid_push_keeps_it_then_one_killed_mid_receive_finishes_it(
        host_worker, owner, wait_job, wait_for, proxy):  # noqa: F811
    a, b = host_worker("mvs-a", env=env(proxy)), host_worker("mvs-b", env=env(proxy))
    seed(a, wait_job)
    web = start_web(owner, a, wait_job, wait_for)

    # 1. Killed while it pushes (the container stopped by the move, the receive not sent yet).
    proxy.stop_at(b"PUT /internal/transfers/", "up", 256 * KiB)
    made, job = services.send_container(owner, web, b.host.name)
    wait_for(proxy.held.is_set, timeout=120, what="the source's push to be held")
    assert state_on(a, web) == "exited"  # the move stopped it
    a.kill9()
    proxy.open_gate(cut=True)
    a = host_worker("mvs-a", state_root=a.state_root, env=env(proxy))
    job = wait_job(job, timeout=120)
    assert (job.state, job.error_code, job.attempts) == (Job.State.FAILED, "worker_died", 2), job.error
    assert "started again" in job.error, job.error
    web = row_where(wait_for, web, "running again on the source", state="running")
    assert both_files(web) == ("first\nrestarted\n", "first\nrestarted\n")
    receive = Job.objects.get(pk=job.params["receive_job"])
    assert receive.state in (Job.State.CANCELLED, Job.State.FAILED)  # not started, or cut with its stream
    assert not Container.objects.filter(pk=made.pk).exists() and engine_state(b) == ([], [])

    # 2. Killed while the target unpacks (the whole pack pushed, the receive running): the target finishes it.
    proxy.stop_at(b"GET /internal/transfers/", "down", 256 * KiB)
    made, job = services.send_container(owner, web, b.host.name)
    wait_for(proxy.held.is_set, timeout=120, what="the target's fetch to be held")

    def pushed() -> bool:  # the source streams while the target reads: kill it once the whole pack is in
        job.refresh_from_db()
        return Transfer.objects.filter(job_id=job.params.get("receive_job"), kind=Transfer.Kind.UPLOAD).exists()

    wait_for(pushed, timeout=120, what="the whole pack at the control plane")
    a.kill9()
    proxy.open_gate()
    moved = row_where(wait_for, made, "running on the target", timeout=120, state="running")
    a = host_worker("mvs-a", state_root=a.state_root, env=env(proxy))
    job = wait_job(job, timeout=120)
    assert (job.state, job.attempts) == (Job.State.SUCCEEDED, 2), job.error
    assert both_files(moved) == ("first\nrestarted\nrestarted\n", "first\nrestarted\nrestarted\n")
    assert not Container.objects.filter(pk=web.pk).exists() and engine_state(a) == ([], [])
    assert list(Container.objects.filter(name="web").values_list("host__name", flat=True)) == ["mvs-b"]


def test_a_target_killed_mid_receive_fails_the_move_once_offline_and_leaves_nothing(
        host_worker, owner, wait_job, wait_for, proxy):  # noqa: F811
    a = host_worker("mvt-a", env={"BERTH_HOST_OFFLINE_AFTER": OFFLINE_AFTER})
    b = host_worker("mvt-b", env=env(proxy))
    seed(a, wait_job)
    seed(b, wait_job)  # b has the image: the pack is the volume, then a 2 MiB upper dir, held inside the latter
    web = start_web(owner, a, wait_job, wait_for, before="dd if=/dev/zero of=/pad bs=1024 count=2048 2>/dev/null; ")

    proxy.stop_at(b"GET /internal/transfers/", "down", 1024 * KiB)
    made, job = services.send_container(owner, web, b.host.name)
    wait_for(proxy.held.is_set, timeout=120, what="the target's fetch to be held")
    wait_for(lambda: made.engine_name in engine_state(b)[0], what="the container made on the target")
    b.kill9()
    proxy.open_gate(cut=True)
    job = wait_job(job, timeout=120)  # the move's own timeout is an hour: only the offline host ends it sooner
    assert job.state == Job.State.FAILED and "mvt-b is offline since" in job.error, job.error
    web = row_where(wait_for, web, "running again on the source", state="running")
    assert both_files(web) == ("first\nrestarted\n", "first\nrestarted\n")
    assert not Container.objects.filter(pk=made.pk).exists()
    assert made.engine_name in engine_state(b)[0]  # half made, its worker dead: nobody could remove it yet

    host_worker("mvt-b", state_root=b.state_root, env=env(proxy))
    wait_for(lambda: engine_state(b) == ([], []), what="the target's next worker to remove the half-made container")
    assert list(Container.objects.filter(name="web").values_list("host__name", flat=True)) == ["mvt-a"]


def dying(holds: Path) -> dict[str, str]:
    return {"BERTH_HOST_OFFLINE_AFTER": OFFLINE_AFTER, "BERTH_JOB_MAX_ATTEMPTS": ATTEMPTS,
            "BERTH_FAILPOINTS": str(holds)}


def held_at(holds: Path, job: Job, wait_for, what: str) -> Path:
    held = holds / f"held.{job.pk}"
    wait_for(held.exists, timeout=120, what=what)
    return held


def test_a_source_killed_on_every_attempt_gives_the_move_up_leaving_it_stopped_and_nothing_on_the_target(
        host_worker, owner, wait_job, wait_for, tmp_path):  # noqa: F811
    from workers.handlers.move_receive import ABANDONED

    holds = tmp_path / "holds"
    holds.mkdir()
    a, b = host_worker("mvg-a", env=dying(holds)), host_worker("mvg-b", env=dying(holds))
    seed(a, wait_job)
    web = start_web(owner, a, wait_job, wait_for)
    # The target's receive waits (alive, its host online) before it reads anything; attempt 1 of the move dies once
    # it stopped the container and sent that receive.
    (holds / "container.receive").write_text("report receiving the pack")
    (holds / "container.move").write_text("report lacks")
    made, job = services.send_container(owner, web, b.host.name)
    held = held_at(holds, job, wait_for, "attempt 1 after the stop")
    job.refresh_from_db()
    receive = Job.objects.get(pk=job.params["receive_job"])
    held_at(holds, receive, wait_for, "the receive on the target")
    assert state_on(a, web) == "exited"
    a.kill9()

    # Attempt 2 (the re-run resumes) dies as it waits for that receive.
    held.unlink()
    (holds / "container.move").write_text("report waiting for the receive")
    a = host_worker("mvg-a", state_root=a.state_root, env=dying(holds))
    held_at(holds, job, wait_for, "attempt 2 waiting for the receive")
    a.kill9()

    # The next worker fails the move (no attempts left) and settles what it left.
    (holds / "container.move").unlink()
    a = host_worker("mvg-a", state_root=a.state_root, env=dying(holds))
    job = wait_job(job, timeout=120)
    assert (job.state, job.attempts) == (Job.State.FAILED, 2), job.error
    receive = wait_job(receive, timeout=60)  # abandoned, not left running on the target
    assert (receive.state, receive.error_code) == (Job.State.FAILED, ABANDONED), receive.error
    settle = wait_job(Job.objects.get(pk=Job.objects.get(pk=job.pk).params["settled_by"]), timeout=60)
    assert (settle.kind, settle.host_id, settle.state) == ("container.settle", a.host.pk, Job.State.SUCCEEDED), \
        settle.error
    job.refresh_from_db()
    assert job.error_code == "worker_died" and job.error.startswith(
        "the worker of host mvg-a died during each of the 2 attempts of this move, so it was given up: nothing of "
        "it stays on host mvg-b; web stays on host mvg-a, exited (the move had stopped it;"), job.error
    web.refresh_from_db()
    assert (web.host_id, web.state, state_on(a, web)) == (a.host.pk, "exited", "exited")  # not started again
    assert not Container.objects.filter(pk=made.pk).exists() and not Volume.objects.filter(host=b.host).exists()
    assert engine_state(b) == ([], []) and not Transfer.objects.filter(job=receive).exists()


def kill_pool_process(worker, held: Path) -> None:
    """SIGKILL the pool process a fail-point holds (its worker's main process lives on), by PID and start time."""
    pid = int(held.read_text().split()[0])
    ticks = dict(descendants(worker.pid))[pid]  # one of this worker's processes, not a reused PID
    held.unlink()
    if dict(descendants(worker.pid)).get(pid) == ticks:
        os.kill(pid, signal.SIGKILL)


def test_a_target_killed_on_every_attempt_of_its_receive_removes_what_it_made_and_the_source_runs_again(
        host_worker, owner, wait_job, wait_for, tmp_path):  # noqa: F811
    holds = tmp_path / "holds"
    holds.mkdir()
    a = host_worker("mvr-a", env={"BERTH_HOST_OFFLINE_AFTER": OFFLINE_AFTER})
    b = host_worker("mvr-b", env=dying(holds))
    seed(a, wait_job)
    web = start_web(owner, a, wait_job, wait_for)
    # Each attempt of the receive dies once it made and started the container, before its end is written.
    (holds / "container.receive").write_text("finish")
    made, job = services.send_container(owner, web, b.host.name)
    wait_for(lambda: Job.objects.get(pk=job.pk).params.get("receive_job"), timeout=120, what="the receive made")
    receive = Job.objects.get(pk=Job.objects.get(pk=job.pk).params["receive_job"])
    kill_pool_process(b, held_at(holds, receive, wait_for, "attempt 1 of the receive at its end"))
    kill_pool_process(b, held_at(holds, receive, wait_for, "attempt 2 of the receive at its end"))
    assert state_on(b, made) == "running"  # what the dead attempts left

    receive = wait_job(receive, Job.State.FAILED, timeout=60)
    assert receive.attempts == 2, receive.error
    job = wait_job(job, timeout=60)
    assert job.state == Job.State.FAILED and "host mvr-b did not take the container" in job.error, job.error
    try:
        web = row_where(wait_for, web, "running again on the source", state="running")
    except pytest.fail.Exception as failed:
        pytest.fail(f"{failed}\n{a.host_name}'s engine: {state_on(a, web)}; the move: {job.error}\n"
                    f"{a.host_name}'s log:\n{a.log()[-6000:]}")
    settle = Job.objects.get(pk=wait_for(lambda: Job.objects.get(pk=receive.pk).params.get("settled_by"),
                                         what="the receive's settle job"))
    try:
        settle = wait_job(settle, timeout=60)
        assert (settle.host_id, settle.state) == (b.host.pk, Job.State.SUCCEEDED), settle.error
        wait_for(lambda: engine_state(b) == ([], []), timeout=30,
                 what="the target to remove the container its receive made")
    except (AssertionError, pytest.fail.Exception) as failed:
        pytest.fail(f"{failed}\nleft on {b.host_name}: {engine_state(b)}; settle #{settle.pk} {settle.state} "
                    f"{settle.result}\n{b.host_name}'s log:\n{b.log()[-6000:]}")
    assert not Container.objects.filter(pk=made.pk).exists() and not Volume.objects.filter(host=b.host).exists()
    assert list(Container.objects.filter(name="web").values_list("host__name", flat=True)) == ["mvr-a"]
