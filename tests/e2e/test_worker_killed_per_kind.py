"""kill -9 of the worker inside each kind of job (issue 16): one real Celery worker holds a job of every kind at a
known step, is killed with all of them in flight, and the next worker re-runs them; each ends succeeded and the
host's containers, images, networks and volumes are exactly what the rows say, with nothing left over.

The step is a fail-point (workers/failpoint.py, off unless BERTH_FAILPOINTS is set): the job stops at a progress
report it makes after the host changed and before the database says so, or once its handler returned and before
its end is written, writes a file, and waits to be killed. One kill for all kinds keeps the test to two worker
starts. Kinds covered elsewhere: image.import/load/save and container.export (tests/e2e/test_transfer_failures.py),
container.exec (tests/e2e/test_exec_console.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from containers import jobs, services
from containers.models import Container, Image, Job, Network, Volume
from containers.services import images as image_services
from containers.services import networks as network_services
from containers.services import registries
from containers.services import volumes as volume_services
from tests.engine.images.registry_server import LocalRegistry, registry_available
from tests.support import clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]

SLEEP = ["sh", "-c", "sleep 600"]
# Where each kind's job is held: "finish" (its handler returned; its end not yet recorded) or "report TEXT" (its
# progress report saying TEXT: after the host changed, before the row says so).
HOLDS = {
    "container.create": "report starting",  # made on the host, not started
    "container.start": "finish",
    "container.stop": "finish",
    "container.pause": "finish",
    "container.remove": "finish",  # gone from the host and from the database
    "container.commit": "report recording",  # in the image store, no row yet
    "image.tag": "report recording",
    "image.remove": "finish",
    "image.build": "report STEP 42held",  # its RUN container made and printing, its intermediate image tagged
    "image.pull": "report recording",
    "image.push": "finish",
    "network.create": "finish",
    "network.remove": "finish",
    "volume.create": "finish",
    "volume.remove": "finish",
}


def _ok(wait_job, job: Job, timeout: float = 120) -> Job:
    job = wait_job(job, timeout=timeout)
    assert job.state == Job.State.SUCCEEDED, (job.kind, job.error)
    return job


def test_a_worker_killed_inside_every_kind_of_job(berth_worker, wait_job, wait_for, tmp_path, tmp_path_factory):
    from workers.engine.containers import ContainerManager, volumes
    from workers.engine.images import ImageStore

    holds = tmp_path / "holds"
    holds.mkdir()
    reg = LocalRegistry(tmp_path / "registry")
    reg.start()
    root = tmp_path_factory.mktemp("kk")  # short: the monitor's socket path is length-limited
    worker = None
    try:
        # Enough pool processes to hold every kind at once, and the setup's jobs meanwhile.
        worker = berth_worker("kinds", state_root=root, env={"BERTH_FAILPOINTS": str(holds)},
                              concurrency=len(HOLDS) + 1)
        host = worker.host
        # A superuser: the tag and the push act on the system's busybox.
        user = get_user_model().objects.create_superuser("killer", password="pw-killer-123")
        _ok(wait_job, jobs.submit("image.seed", host, params={}), timeout=180)
        busybox = Image.objects.get(host=host, name="busybox", tag="latest")

        # What the jobs act on, made while nothing is held.
        def box(name: str, start: bool = True) -> tuple[Container, Job]:
            return services.create_container(user, host=host, image="busybox:latest", name=name, start=start,
                                             command=SLEEP, networks=["none"])

        rows = {n: box(n, start=n != "to-start") for n in ("to-start", "to-stop", "to-pause", "to-remove",
                                                           "to-commit")}
        spare = image_services.image_action(user, busybox, "tag", params={"ref": "spare:1"})
        gone_net, net_job = network_services.create_network(user, host=host, name="gone-net")
        gone_vol, vol_job = volume_services.create_volume(user, host=host, name="gone-vol")
        pushed = registries.push_image(user, busybox, destination=f"{reg.domain}/kept/busybox:1")
        for job in [j for _, j in rows.values()] + [spare, net_job, vol_job, pushed]:
            _ok(wait_job, job)
        rows = {n: Container.objects.get(pk=c.pk) for n, (c, _) in rows.items()}
        spare_image = Image.objects.get(host=host, name="spare", tag="1")

        # Every kind at once, each held at its step.
        for kind, point in HOLDS.items():
            (holds / kind).write_text(point)
        fresh, create_job = box("fresh")
        made_net, net_create = network_services.create_network(user, host=host, name="made-net")
        made_vol, vol_create = volume_services.create_volume(user, host=host, name="made-vol")
        targets = [
            create_job,
            services.container_action(user, rows["to-start"], "start"),
            services.container_action(user, rows["to-stop"], "stop", params={"timeout": 1}),
            services.container_action(user, rows["to-pause"], "pause"),
            services.container_action(user, rows["to-remove"], "remove", params={"force": True}),
            services.container_action(user, rows["to-commit"], "commit", params={"ref": "snap:1"}),
            image_services.image_action(user, busybox, "tag", params={"ref": "more:1"}),
            image_services.image_action(user, spare_image, "remove"),
            registries.build_image(user, host=host, ref="built:1",
                                   dockerfile='FROM busybox\nRUN echo "STEP $((6*7))held"\n'),
            registries.pull_image(user, host=host, ref=f"{reg.domain}/kept/busybox:1", name="pulled:1"),
            registries.push_image(user, busybox, destination=f"{reg.domain}/again/busybox:1"),
            net_create,
            network_services.remove_network(user, gone_net),
            vol_create,
            volume_services.remove_volume(user, gone_vol),
        ]
        assert sorted(j.kind for j in targets) == sorted(HOLDS)
        def not_held() -> list[tuple[str, str, str]]:
            return [(j.kind, j.state, j.error) for j in Job.objects.filter(pk__in=[t.pk for t in targets])
                    if not (holds / f"held.{j.pk}").exists()]

        try:
            wait_for(lambda: not not_held(), timeout=180, what="every job held at its step")
        except pytest.fail.Exception:
            pytest.fail(f"not held at their step: {not_held()}")
        worker.kill9()
        for job in targets:
            job.refresh_from_db()
            assert job.state == Job.State.RUNNING and job.attempts == 1, (job.kind, job.state, job.error)

        worker = berth_worker("kinds", state_root=root)  # no fail-points: the re-runs go through
        ended = [wait_job(job, timeout=240) for job in targets]
        wrong = [(j.kind, j.state, j.error, j.attempts) for j in ended if (j.state, j.attempts) != ("succeeded", 2)]
        assert not wrong, wrong

        # The host is what the rows say.
        mgr = ContainerManager(root)
        want = {"fresh": "running", "to-start": "running", "to-stop": "exited", "to-pause": "paused",
                "to-commit": "running"}

        def containers_match() -> bool:
            rows_now = {c.name: (c.engine_id, c.state) for c in Container.objects.filter(host=host)}
            engine = {v["id"]: v["state"] for v in mgr.list(all=True)}
            return (rows_now.keys() == want.keys() and all(rows_now[n][1] == s for n, s in want.items())
                    and engine == {eid: state for eid, state in rows_now.values()})

        try:
            wait_for(containers_match, timeout=60, what="the containers on the host and their rows to agree")
        except pytest.fail.Exception:
            pytest.fail(f"rows { {c.name: (c.engine_id[:12], c.state) for c in Container.objects.filter(host=host)} }"
                        f" vs host { {v['id'][:12]: (v['name'], v['image'], v['state']) for v in mgr.list(all=True)} }")
        store = ImageStore(root)
        tags = sorted(t for i in store.list() for t in i.tags)
        assert tags == sorted(i.engine_ref for i in Image.objects.filter(host=host)), tags
        assert sorted(f"{i.name}:{i.tag}" for i in Image.objects.filter(host=host)) == [
            "built:1", "busybox:latest", "more:1", "pulled:1", "snap:1"]
        nets = {n["name"] for n in mgr.net.store.all()}
        assert made_net.engine_name in nets and gone_net.engine_name not in nets
        assert not Network.objects.filter(pk=gone_net.pk).exists()
        assert Network.objects.get(pk=made_net.pk).state == Network.State.READY
        assert sorted(v["id"] for v in volumes.list_volumes(root)) == [made_vol.engine_id]
        assert sorted(Volume.objects.values_list("name", flat=True)) == ["made-vol"]
        # Nothing half-made stays: staging, build contexts, dead builds' locks.
        for leftover in ("images/tmp", "build-contexts", "images/builds"):
            assert sorted(p.name for p in (root / leftover).glob("*")) == [], leftover
    finally:
        if worker is not None:
            worker.stop(timeout=10)
        reg.stop()
        clean_state_root(Path(root))
