"""Unit tests of the handlers' row mapping (engine status dict -> Container row) and of the container
handlers' rules, with a fake ContainerManager raising the engine's real errors. The real engine runs in tests/e2e/test_container_jobs.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from containers.models import Container, Host, Job
from workers.engine.containers.errors import InvalidState, NameTaken, NoSuchContainer
from workers.handlers import common, containers, reporter
from workers.tasks import JobError


class FakeManager:
    """Records calls; `containers` maps engine ids to status dicts."""

    def __init__(self) -> None:
        self.containers: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.fail_create: Exception | None = None

    def inspect(self, ref):
        self.calls.append(("inspect", ref))
        if ref not in self.containers:
            raise NoSuchContainer(f"no such container: {ref}")
        return dict(self.containers[ref])

    def create(self, image, **kw):
        self.calls.append(("create", image, kw))
        if self.fail_create:
            raise self.fail_create
        info = status(kw["id"], "created", name=kw["name"])
        self.containers[kw["id"]] = info
        return dict(info)

    def start(self, ref):
        self.calls.append(("start", ref))
        self.containers[ref].update(state="running", pid=4242, started_at="2026-11-29T01:00:00.123456789Z")
        return dict(self.containers[ref])

    def stop(self, ref, timeout=10):
        self.calls.append(("stop", ref, timeout))
        self.containers[ref].update(state="exited", exit_code=143, finished_at="2026-11-29T01:00:05Z")
        return dict(self.containers[ref])

    def remove(self, ref, force=False):
        self.calls.append(("remove", ref, force))
        if ref not in self.containers:
            raise NoSuchContainer(f"no such container: {ref}")
        if self.containers[ref]["state"] == "running" and not force:
            raise InvalidState("container c is running: stop it first or force")
        del self.containers[ref]


def status(cid: str, state: str, **extra) -> dict:
    base = {"id": cid, "name": "c", "image": "busybox:latest", "state": state, "pid": None, "exit_code": None,
            "oom_killed": False, "started_at": None, "finished_at": None, "restart_policy": "no",
            "restart_count": 0, "status_message": ""}
    base.update(extra)
    return base


# --- pure mapping ------------------------------------------------------------------------------------

def test_parse_time_takes_nanoseconds_and_zones():
    assert reporter.parse_time("2026-11-29T01:35:37.123456789Z") == datetime(2026, 11, 29, 1, 35, 37, 123456,
                                                                               tzinfo=UTC)
    assert reporter.parse_time("2026-11-29T01:35:37Z") == datetime(2026, 11, 29, 1, 35, 37, tzinfo=UTC)
    assert reporter.parse_time("2026-11-29T02:35:37.5+01:00") == datetime(2026, 11, 29, 1, 35, 37, 500000,
                                                                            tzinfo=UTC)
    assert reporter.parse_time(None) is None and reporter.parse_time("not a time") is None


def test_row_changes_for_start_exit_oom_and_restart():
    row = Container(name="c", state="created", restart_policy="on-failure:3")
    running = status("x", "running", pid=7, started_at="2026-11-29T01:00:00Z")
    changes = reporter.row_changes(row, running)
    assert changes == {"state": "running", "started": datetime(2026, 11, 29, 1, tzinfo=UTC)}

    row.state, row.started = "running", changes["started"]
    exited = status("x", "exited", exit_code=3, started_at="2026-11-29T01:00:00Z",
                    finished_at="2026-11-29T01:00:09Z")
    changes = reporter.row_changes(row, exited)
    assert changes == {"state": "exited", "exit_code": 3, "finished": datetime(2026, 11, 29, 1, 0, 9, tzinfo=UTC),
                       "status_message": "exited with code 3"}

    oom = status("x", "exited", exit_code=137, oom_killed=True)
    assert reporter.row_changes(row, oom)["status_message"] == "OOM killed"
    assert reporter.row_changes(row, oom)["oom_killed"] is True

    restarted = status("x", "running", restart_count=2, restart_policy="on-failure:3",
                       started_at="2026-11-29T01:00:00Z")
    row.state = "exited"
    changes = reporter.row_changes(row, restarted)
    assert changes["restart_count"] == 2 and changes["state"] == "running"
    assert changes["status_message"] == "restarted by policy on-failure (2)"
    # Down for good after its restarts: the row says why, not that it was restarted.
    done = status("x", "exited", exit_code=1, restart_count=2, status_message="restarted by policy on-failure (2)")
    assert reporter.row_changes(row, done)["status_message"] == "exited with code 1"

    # The engine's own words win; unknown states change nothing; the same status twice changes nothing.
    assert reporter.row_changes(row, status("x", "dead", status_message="runtime lost it"))["status_message"] == \
        "runtime lost it"
    assert reporter.row_changes(row, status("x", "bogus")) == {}
    row.state, row.restart_count, row.status_message = "running", 2, changes["status_message"]
    assert reporter.row_changes(row, restarted) == {}


def test_create_kwargs_blank_fields_are_unset_and_the_row_gives_id_and_name():
    row = Container(name="web", engine_id="ab" * 32)
    kw = containers.create_kwargs({"image": "busybox", "workdir": "", "memory": None, "cpus": 0.5,
                                   "env": {"A": "1"}, "restart_policy": "", "tty": True}, row)
    assert kw["id"] == "ab" * 32 and kw["name"] == "web" and kw["bind_roots"] is None
    spec = kw["spec"]
    assert spec.workdir is None and spec.memory is None and spec.cpus == 0.5 and spec.env == {"A": "1"}
    assert spec.restart_policy == "no" and spec.tty is True and "start" not in kw


def test_byte_progress_maps_bytes_to_percent_and_throttles(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: clock[0])
    seen = []
    progress = common.byte_progress(lambda p, m="": seen.append((p, m)), 10, 90, "imported", total=100 << 20)
    progress(0, None)
    progress(50 << 20, None)  # too soon after the last report: dropped
    clock[0] += 1
    progress(50 << 20, None)
    clock[0] += 1
    progress(100 << 20, 100 << 20)
    assert [p for p, _ in seen] == [10, 50, 90]
    assert seen[1][1] == "imported 50.0 MiB of 100.0 MiB"


def test_split_ref_and_safe_filename():
    assert common.split_ref("busybox") == ("busybox", "latest")
    assert common.split_ref("docker.io/library/alpine:3") == ("alpine", "3")
    assert common.safe_filename("../etc/passwd") == "etc_passwd"


# --- with the database -------------------------------------------------------------------------------

@pytest.fixture
def fake(monkeypatch):
    mgr = FakeManager()
    monkeypatch.setattr(common, "container_manager", lambda: mgr)
    return mgr


def job_for(row: Container, kind: str, params: dict | None = None) -> Job:
    return Job.objects.create(kind=kind, host=row.host, target_type="container", target_id=str(row.pk),
                              params=params or {})


def test_save_status_writes_changed_fields_and_publishes(host, published):
    row = Container.objects.create(name="c1", host=host)
    assert reporter.save_status(row, status(row.engine_id, "exited", exit_code=0))
    row.refresh_from_db()
    assert (row.state, row.exit_code, row.status_message) == ("exited", 0, "exited with code 0")
    assert published[-1]["type"] == "container" and published[-1]["state"] == "exited"
    assert published[-1]["status_message"] == "exited with code 0"
    assert not reporter.save_status(row, status(row.engine_id, "exited", exit_code=0)), "no change, no event"
    # A row being removed is left alone.
    Container.objects.filter(pk=row.pk).update(state="removing")
    row.refresh_from_db()
    assert not reporter.save_status(row, status(row.engine_id, "running"))
    assert Container.objects.get(pk=row.pk).state == "removing"


def test_apply_changes_maps_by_engine_id_on_this_host_only(host, published):
    other = Host.objects.create(name="other-host")
    mine = Container.objects.create(name="m", host=host)
    theirs = Container.objects.create(name="t", host=other)
    n = reporter.apply_changes(host, [status(mine.engine_id, "running"), status(theirs.engine_id, "running")])
    assert n == 1
    assert Container.objects.get(pk=mine.pk).state == "running"
    assert Container.objects.get(pk=theirs.pk).state == "created"


def test_rows_unknown_to_the_engine_become_dead_unless_a_job_is_making_them(host, published):
    known = Container.objects.create(name="known", host=host, state="running")
    lost = Container.objects.create(name="lost", host=host, state="running")
    coming = Container.objects.create(name="coming", host=host)
    Job.objects.create(kind="container.create", host=host, target_type="container", target_id=str(coming.pk))
    marked = reporter.mark_unknown_dead(host, {known.engine_id})
    assert marked == [lost.pk]
    lost.refresh_from_db()
    assert lost.state == "dead" and "no longer has this container" in lost.status_message
    assert Container.objects.get(pk=coming.pk).state == "created"
    assert Container.objects.get(pk=known.pk).state == "running"
    assert reporter.mark_unknown_dead(host, {known.engine_id}) == [], "already dead rows are not marked again"


def test_the_check_for_lost_rows_reads_ids_only_while_the_engine_has_every_container(host, published):
    """The reporter's periodic pass on an idle host: one query of (pk, engine_id) pairs, however many rows,
    and no model built for a container the engine has."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = [Container.objects.create(name=f"c{i}", host=host, state="running") for i in range(40)]
    with CaptureQueriesContext(connection) as queries:
        assert reporter.mark_unknown_dead(host, {r.engine_id for r in rows}) == []
    assert len(queries.captured_queries) == 1
    assert '"containers_container"."image_ref"' not in queries.captured_queries[0]["sql"]


def test_create_failure_deletes_the_row_publishes_removed_and_raises_readably(host, published, fake):
    row = Container.objects.create(name="web", host=host, image_ref="busybox:latest")
    fake.fail_create = NameTaken("name 'web' is already in use by container 0123456789ab")
    with pytest.raises(JobError) as err:
        containers.create(job_for(row, "container.create", {"image": "busybox:latest", "name": "web"}),
                          lambda *a: None)
    assert str(err.value) == "name 'web' is already in use by container 0123456789ab"
    assert not Container.objects.filter(pk=row.pk).exists()
    assert published[-1]["type"] == "container" and published[-1]["id"] == row.pk
    assert published[-1]["state"] == "removed"
    assert ("remove", row.engine_id, True) in fake.calls, "our id is cleaned on the host too"


def test_create_and_start_then_redelivery_adopts(host, published, fake):
    row = Container.objects.create(name="web", host=host, image_ref="busybox:latest")
    job = job_for(row, "container.create", {"image": "busybox:latest", "name": "web", "start": True})
    result = containers.create(job, lambda *a: None)
    assert result == {"container_id": row.pk, "engine_id": row.engine_id, "state": "running"}
    row.refresh_from_db()
    assert row.state == "running" and row.started is not None
    creates = [c for c in fake.calls if c[0] == "create"]
    assert len(creates) == 1 and creates[0][2]["id"] == row.engine_id
    # The same job again (a worker died before finishing it): no second create, no failure.
    assert containers.create(job, lambda *a: None)["state"] == "running"
    assert len([c for c in fake.calls if c[0] == "create"]) == 1


def test_stop_of_a_stopped_container_is_done_and_remove_of_a_lost_one_deletes_the_row(host, published, fake):
    row = Container.objects.create(name="c", host=host)
    fake.containers[row.engine_id] = status(row.engine_id, "exited", exit_code=0)
    result = containers.stop(job_for(row, "container.stop", {"timeout": 3}), lambda *a: None)
    assert result["state"] == "exited" and result["container_id"] == row.pk
    assert not any(c[0] == "stop" for c in fake.calls)
    with pytest.raises(JobError, match="timeout must be a whole number"):
        containers.stop(job_for(row, "container.stop", {"timeout": "soon"}), lambda *a: None)

    del fake.containers[row.engine_id]
    with pytest.raises(JobError, match="no longer has this container"):
        containers.start(job_for(row, "container.start"), lambda *a: None)
    assert Container.objects.get(pk=row.pk).state == "dead"
    assert containers.remove(job_for(row, "container.remove", {"force": True}), lambda *a: None)["removed"]
    assert not Container.objects.filter(pk=row.pk).exists()


def test_new_image_names_are_scoped_and_never_replace(host, published):
    """A new name goes to its name space's engine ref; one that name space has already is refused."""
    from django.contrib.auth import get_user_model

    from containers.models import Image

    User = get_user_model()
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    Image.objects.create(host=host, name="busybox", tag="latest", shared=True)
    Image.objects.create(host=host, name="app", tag="v1", owner=alice, namespace=f"u{alice.pk}")
    # Someone else's name is no obstacle: each name space has its own.
    assert common.new_engine_ref(host, f"u{alice.pk}", "busybox") == f"u{alice.pk}/busybox:latest"
    assert common.new_engine_ref(host, f"u{bob.pk}", "app:v1") == f"u{bob.pk}/app:v1"
    with pytest.raises(JobError, match="app:v1 already exists in your name space on host unit-host"):
        common.new_engine_ref(host, f"u{alice.pk}", "app:v1")
    with pytest.raises(JobError, match="busybox:latest already exists in the system name space"):
        common.new_engine_ref(host, "", "busybox:latest")  # a superuser removes the base image first
    with pytest.raises(JobError, match="reserved"):
        common.new_engine_ref(host, "", f"u{bob.pk}/app:v1")  # would be bob's engine ref
    assert common.user_ref("t3/app:v1") == "app:v1" and common.user_ref("busybox:latest") == "busybox:latest"


def test_image_rows_one_per_host_name_tag_following_the_store(host, published, tmp_path, settings):
    import io
    import tarfile

    from django.contrib.auth import get_user_model

    from containers.models import Image
    from workers.engine.images import ImageStore
    from workers.handlers import images

    settings.BERTH_STATE_ROOT = tmp_path / "root"
    store = ImageStore(settings.BERTH_STATE_ROOT)
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        info = tarfile.TarInfo("etc/hello")
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
    img = store.import_tarball(tar, "app:v1")
    alice = get_user_model().objects.create_user("alice")

    ns = f"u{alice.pk}"
    row = common.sync_image_row(host, "app:v1", img, owner=alice, namespace=ns)
    assert (row.name, row.tag, row.owner_id, row.shared, row.namespace) == ("app", "v1", alice.pk, False, ns)
    assert row.digest == img.digest and row.layers == img.diff_ids and row.config == img.config
    assert row.size == img.size and published[-1]["type"] == "image" and published[-1]["id"] == row.pk
    Image.objects.create(host=host, name="app", tag="v1", owner=alice)  # a duplicate, as a race could make
    again = common.sync_image_row(host, "docker.io/library/app:v1", img, owner=alice, namespace=ns)
    assert again.pk == row.pk and Image.objects.filter(host=host, name="app", tag="v1").count() == 1
    n = len(published)
    common.sync_image_row(host, "app:v1", img, owner=alice, namespace=ns)
    assert len(published) == n, "an unchanged row is not written nor announced"

    # Worker start: an image made with the host CLI gets a row (nobody's); existing rows keep their owner.
    # alice's row was made before name spaces (the store has it as `app:v1`): it moves to `u<id>/app:v1`.
    store.tag("app:v1", "cli:made")
    images.sync_host_images(host)
    assert Image.objects.get(pk=row.pk).owner_id == alice.pk
    assert store.resolve(f"{ns}/app:v1").digest == img.digest and not store.exists("app:v1")
    assert Image.objects.filter(host=host, name="app", tag="v1").count() == 1
    cli = Image.objects.get(host=host, name="cli", tag="made")
    assert cli.owner is None and not cli.shared and cli.digest == img.digest


def test_remove_refused_by_the_host_keeps_the_row_in_its_real_state(host, published, fake):
    row = Container.objects.create(name="busy", host=host, state="removing")
    fake.containers[row.engine_id] = status(row.engine_id, "running", pid=9)
    with pytest.raises(JobError, match="stop it first or force"):
        containers.remove(job_for(row, "container.remove", {"force": False}), lambda *a: None)
    assert Container.objects.get(pk=row.pk).state == "running"
    assert row.engine_id in fake.containers
