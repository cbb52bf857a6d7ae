"""Move and copy between hosts (issue 18) on the real stack: two hosts on this machine (own state roots,
queues and host names; real Celery workers, redis-server, engine, runtime, monitor, netavark), the control
plane's HTTP transfers between them, users acting through the services. The first test's hosts reach the web
server `make run` starts (uvicorn: the relay on its loop, containers/transfer_asgi.py); the second's this test
process's live server (Django's view).

The container writes a line into its upper dir and its named volume at each start ("first", then
"restarted"), and serves / with httpd on a published port: after a move the target's port answers with
both files holding two lines (the files travelled, and it started again there)."""

from __future__ import annotations

import urllib.request

import pytest

from containers import services
from containers.models import Container, Image, Job, Volume
from tests.e2e.test_container_jobs import host_worker, owner, row_where, seed  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SCRIPT = ("mkdir -p /www; for f in /www/log /data/log; do if [ -f $f ]; then echo restarted >> $f; "
          "else echo first > $f; fi; done; exec httpd -f -p 80 -h /")


def start_web(user, worker, wait_job, wait_for, name: str = "web", before: str = "") -> Container:
    """`before`: shell run first at each start (e.g. a file that makes the upper dir bigger)."""
    row, job = services.create_container(user, host=worker.host, image="busybox:latest", name=name,
                                         command=["sh", "-c", before + SCRIPT], mounts=["data:/data"], ports=["80"])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    row = row_where(wait_for, row, "running", state="running")
    assert get(row, "/www/log") == "first\n"
    return row


def get(row: Container, path: str) -> str:
    row.refresh_from_db()
    port = row.network["ports"][0]["host_port"]
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read().decode()


def engine_state(worker) -> tuple[list[str], list[str]]:
    """The host's own truth: its containers' names and its volumes' names."""
    from workers.engine.containers import ContainerManager, volumes

    names = [c["name"] for c in ContainerManager(worker.state_root).list()]
    return names, [v["name"] for v in volumes.list_volumes(worker.state_root)]


def send(user, row: Container, worker, wait_job, *, copy: bool = False) -> tuple[Container, Job]:
    made, job = services.send_container(user, row, worker.host.name, copy=copy)
    job = wait_job(job, timeout=120)
    return Container.objects.filter(pk=made.pk).first(), job


@pytest.fixture
def asgi_url(live_redis, tmp_path):
    """The web server `make run` starts, on this test's database and Redis, for the hosts' transfers."""
    from tests.conftest import stop_process
    from tests.support import start_asgi_server

    web, port = start_asgi_server(live_redis, tmp_path / "web-root", tmp_path / "web.log")
    yield f"http://127.0.0.1:{port}"
    stop_process(web)


def test_copy_then_move_then_move_back_sending_only_what_the_target_lacks(host_worker, owner, wait_job,  # noqa: F811
                                                                        wait_for, asgi_url):
    control = {"BERTH_CONTROL_URL": asgi_url}
    a, b = host_worker("mv-a", env=control), host_worker("mv-b", env=control)
    seed(a, wait_job)
    web = start_web(owner, a, wait_job, wait_for)

    # Copy: the source keeps running; the copy on b has the same files and runs (its own start: 2 lines).
    twin, job = send(owner, web, b, wait_job, copy=True)
    assert job.state == Job.State.SUCCEEDED, job.error
    twin = row_where(wait_for, twin, "copy running", state="running")
    assert (twin.host_id, twin.name, twin.image.ref) == (b.host.pk, "web", "busybox:latest")
    assert get(twin, "/www/log") == get(twin, "/data/log") == "first\nrestarted\n"
    web.refresh_from_db()
    assert web.state == "running" and get(web, "/www/log") == "first\n"
    assert job.result["blobs_sent"] == 3 and job.result["blobs_kept"] == 0  # b had no busybox
    vid = web.config["volumes"][0]["engine_id"]
    names = set(job.result["digests"])
    assert {"image.json", "upper.tar", f"volumes/{vid}.tar"} < names and len(names) == 6  # + 3 blobs

    # A move onto a name the target has is refused before anything is made.
    with pytest.raises(services.ServiceError) as refused:
        services.send_container(owner, web, b.host.name)
    assert (refused.value.code, refused.value.field) == ("name_taken", "host")
    assert wait_job(services.container_action(owner, twin, "remove", params={"force": True})).state == "succeeded"
    Volume.objects.filter(host=b.host, name="data").delete()
    from workers.engine.containers import volumes
    for v in volumes.list_volumes(b.state_root):
        volumes.remove(b.state_root, v["id"], force=True)

    # Move: running on b under the same name with its files and volume data, nothing left on a.
    moved, job = send(owner, web, b, wait_job)
    assert job.state == Job.State.SUCCEEDED, job.error
    moved = row_where(wait_for, moved, "moved and running", state="running")
    assert get(moved, "/www/log") == get(moved, "/data/log") == "first\nrestarted\n"
    assert not Container.objects.filter(pk=web.pk).exists() and not Volume.objects.filter(host=a.host).exists()
    assert engine_state(a) == ([], [])
    assert job.result["was_running"] and job.result["blobs_kept"] == 1  # b has busybox's layer now
    assert job.result["sent"]["blobs"] < 4096  # the manifest and the config only

    # And back: a still has busybox, so only the container's own bytes travel.
    back, job = send(owner, moved, a, wait_job)
    assert job.state == Job.State.SUCCEEDED, job.error
    back = row_where(wait_for, back, "back and running", state="running")
    assert get(back, "/www/log") == get(back, "/data/log") == "first\nrestarted\nrestarted\n"
    assert job.result["blobs_kept"] == 1 and engine_state(b) == ([], [])
    assert Image.objects.filter(host=a.host, name="busybox").count() == 1


def test_a_target_refusal_leaves_the_source_running_and_the_target_as_it_was(host_worker, owner, wait_job,  # noqa: F811
                                                                          wait_for):
    a, b = host_worker("mvf-a"), host_worker("mvf-b")
    seed(a, wait_job)
    seed(b, wait_job)
    web = start_web(owner, a, wait_job, wait_for)
    # The target's engine has a container of that name the control plane does not know: its create refuses.
    from workers.engine.containers import ContainerManager

    ContainerManager(b.state_root).create("busybox:latest", name=web.engine_name, command=["true"])
    before = engine_state(b)

    gone, job = send(owner, web, b, wait_job)
    assert job.state == Job.State.FAILED and "already in use" in job.error, job.error
    assert gone is None and not Volume.objects.filter(host=b.host).exists()
    assert engine_state(b) == before
    web = row_where(wait_for, web, "running again", state="running")
    assert get(web, "/www/log") == get(web, "/data/log") == "first\nrestarted\n"  # stopped, started again
