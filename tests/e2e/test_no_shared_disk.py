"""A host that shares no disk with the control plane: its worker runs in its own mount namespace with a private
tmpfs over its state root's parent, so the web server (a real uvicorn process) cannot see a byte of it. Every
upload and download kind still works through the web server, as a non-superuser: import, load, create with a
CPU limit (checked against the host's heartbeat facts), log download, export download, save download; and
neither side keeps a stray file (asserted by listing both sides)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model

from containers import jobs, services
from containers.api.auth import create_token
from containers.models import Container, Job
from tests.conftest import stop_process
from tests.support import busybox_tarball, start_asgi_server

pytestmark = [pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]


def in_namespace(pid: int, *argv: str) -> str:
    """Run `argv` in the mount namespace of process `pid` (the hidden worker) and return its stdout."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-m", "--", *argv], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def clean_hidden_root(pid: int, root: Path) -> None:
    """Remove the hidden host's containers and stop its monitor, from inside its namespace."""
    code = f"from tests.support import clean_state_root; from pathlib import Path; clean_state_root(Path({str(root)!r}))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "PYTHONPATH": str(REPO)}
    subprocess.run(["nsenter", "-t", str(pid), "-m", "--", sys.executable, "-c", code], env=env, cwd=REPO,
                   timeout=120, check=False)


def web_files(transfers: Path) -> list[str]:
    return sorted(f"{d}/{p.name}" for d in ("uploads", "downloads") if (transfers / d).is_dir()
                  for p in (transfers / d).iterdir())


@pytest.fixture
def hidden_host(berth_worker, live_redis, tmp_path, settings):
    """(web url, worker handle, hidden state root, web transfer dir): uvicorn with its own state root and
    staging dir; the worker behind a private tmpfs, reaching the web server only over HTTP."""
    transfers = tmp_path / "web-transfers"
    settings.BERTH_TRANSFER_DIR = transfers  # this process's services stage into the same dir as the server
    web, port = start_asgi_server(live_redis, tmp_path / "web-root", tmp_path / "web.log",
                                  BERTH_TRANSFER_DIR=str(transfers))
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    root = hidden / "state"
    web_root = tmp_path / "web-root"
    web_root.mkdir(exist_ok=True)
    transfers.mkdir(exist_ok=True)
    # Neither side sees the other's disk: in the worker's namespace the web server's dirs are empty tmpfs too.
    script = ('mount -t tmpfs -o size=2g,mode=700 berth-hidden "$0" && mkdir -p "$0/state" && '
              f'mount -t tmpfs -o size=1m berth-no-web {web_root} && mount -t tmpfs -o size=1m berth-no-web {transfers} '
              '&& exec "$@"')
    wrap = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, str(hidden)]
    worker = None
    try:
        worker = berth_worker("hidden-host", state_root=root, wrap=wrap,
                              env={"BERTH_CONTROL_URL": f"http://127.0.0.1:{port}"})
        yield f"http://127.0.0.1:{port}", worker, root, transfers
    finally:
        if worker is not None and worker.proc.poll() is None:
            clean_hidden_root(worker.pid, root)
            worker.discard()
        stop_process(web)
    assert list(hidden.iterdir()) == [], "the hidden state root never showed outside its namespace"


def test_every_transfer_kind_works_with_a_host_that_shares_no_disk(hidden_host, wait_job, wait_for, tmp_path):
    url, worker, root, transfers = hidden_host
    hidden = root.parent
    assert list(hidden.iterdir()) == [], "the web side (this mount namespace) does not see the host's disk"
    host = worker.host
    assert host.facts["state_root"] == str(root) and host.cpus >= 1

    user = get_user_model().objects.create_user("remote", password="pw-remote-123")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {create_token(user, 'remote')[1]}"

    def job_of(r: requests.Response) -> Job:
        assert r.status_code == 202, r.text
        body = r.json()
        return wait_job(Job.objects.get(pk=(body.get("job") or body)["id"]), timeout=180)

    def download(job: Job) -> bytes:
        assert job.state == Job.State.SUCCEEDED, job.error
        r = api.get(f"{url}/api/v1/jobs/{job.pk}/download")
        assert r.status_code == 200, r.text
        assert int(r.headers["Content-Length"]) == len(r.content) == job.result["size"]
        return r.content

    def host_side_transfers() -> list[str]:
        return in_namespace(worker.pid, "ls", "-A", str(root / "transfers")).split()

    seed = wait_job(jobs.submit("image.seed", host, params={}), timeout=180)
    assert seed.state == Job.State.SUCCEEDED, seed.error
    assert in_namespace(worker.pid, "ls", str(root)).split() and list(hidden.iterdir()) == [], \
        "the worker sees its store, the web side nothing"

    # import: the upload goes to the web server, the worker fetches it over HTTP.
    rootfs = busybox_tarball(tmp_path)
    imp = job_of(api.post(f"{url}/api/v1/images/import", params={"ref": "mine:1", "host": host.name}, data=rootfs,
                          headers={"Content-Type": "application/x-tar"}))
    assert imp.state == Job.State.SUCCEEDED, imp.error
    assert web_files(transfers) == [] and host_side_transfers() == []

    # create with a CPU limit: checked on the web side against the host's reported CPUs, applied on the host.
    too_many = api.post(f"{url}/api/v1/containers", json={"image": "mine:1", "host": host.name,
                                                           "cpus": host.cpus + 1, "command": ["true"]})
    assert too_many.status_code == 400 and "cpus" in too_many.json()["error"]["fields"], too_many.text
    script = "echo out-$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); echo err >&2"
    r = api.post(f"{url}/api/v1/containers", json={"image": "mine:1", "host": host.name, "cpus": 0.5,
                                                    "command": ["sh", "-c", script], "name": "hidden-one"})
    create = job_of(r)
    assert create.state == Job.State.SUCCEEDED, create.error
    row = Container.objects.get(pk=r.json()["container"]["id"])
    wait_for(lambda: (row.refresh_from_db(), row.state == "exited")[1], timeout=120, what="the container to exit")
    assert row.config["cpus"] == 0.5

    # log download (the logs job the dashboard's download form makes), through the web server.
    logs = wait_job(services.container_action(user, row, "logs", params={}), timeout=120)
    text = download(logs).decode()
    assert "err\n" in text and ("out-50000" in text), text  # 0.5 CPU: a 50 ms quota per 100 ms period

    # export download: the container's filesystem.
    export = job_of(api.post(f"{url}/api/v1/containers/{row.pk}/export"))
    with tarfile.open(fileobj=io.BytesIO(download(export))) as tar:
        assert "bin/busybox" in tar.getnames() or "./bin/busybox" in tar.getnames()

    # save download, and load of what was saved (as this user's own image of that name).
    image_id = imp.result["image_id"]
    save = job_of(api.post(f"{url}/api/v1/images/{image_id}/save", json={"format": "docker-archive"}))
    saved = download(save)
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["mine:1"]
    remove = job_of(api.post(f"{url}/api/v1/containers/{row.pk}/remove"))
    assert remove.state == Job.State.SUCCEEDED, remove.error
    gone = job_of(api.delete(f"{url}/api/v1/images/{image_id}"))
    assert gone.state == Job.State.SUCCEEDED, gone.error
    load = job_of(api.post(f"{url}/api/v1/images/load", params={"host": host.name}, data=saved,
                           headers={"Content-Type": "application/x-tar"}))
    assert load.state == Job.State.SUCCEEDED, load.error
    assert [i["ref"] for i in load.result["images"]] == ["mine:1"]

    # Nothing stray on either side: the web side keeps exactly the three finished downloads, the host nothing.
    assert web_files(transfers) == sorted(f"downloads/{j.pk}" for j in (logs, export, save))
    assert host_side_transfers() == []
    assert in_namespace(worker.pid, "ls", "-A", str(transfers)) == "", "the worker never saw the web's files"
    assert not in_namespace(worker.pid, "sh", "-c", f"ls -A {root}/exports 2>/dev/null || true").split()
    assert list(hidden.iterdir()) == []
