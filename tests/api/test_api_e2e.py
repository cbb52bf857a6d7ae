"""End to end through the API only, with a token: a live ASGI server (the one `make run` uses), a real Celery worker and
the real engine. Import a busybox tarball, run a container that prints a line, read its logs (plain and
follow), export it and download the tar, then delete the container and the image."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest
import requests

from tests.support import berth_cgroups, busybox_tarball, clean_state_root

pytestmark = [pytest.mark.e2e, pytest.mark.root]

HERE = Path(__file__).resolve().parent


class Api:
    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, expect: int, **kwargs) -> requests.Response:
        response = self.session.request(method, self.url + "/api/v1" + path, timeout=60, **kwargs)
        assert response.status_code == expect, (method, path, response.status_code, response.text[:500])
        return response

    def wait_job(self, job: dict, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while job["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job {job['id']} ({job['kind']}) still {job['state']}"
            time.sleep(0.3)
            job = self("GET", f"/jobs/{job['id']}", 200).json()
        assert job["state"] == "succeeded", {k: job[k] for k in ("kind", "state", "error", "message", "params")}
        return job

    def wait_container(self, pk: int, states: tuple[str, ...], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            row = self("GET", f"/containers/{pk}", 200).json()
            if row["state"] in states:
                return row
            assert time.monotonic() < deadline, f"container {pk} still {row['state']}"
            time.sleep(0.3)


def test_import_run_logs_export_delete_through_the_api(api_server, berth_worker, world, tmp_path):
    from containers.api.auth import create_token

    worker = berth_worker("api-e2e", env={"BERTH_CONTROL_URL": api_server.url})  # transfers via that server
    cgroups_before = berth_cgroups()
    try:
        _, token = create_token(world.users["owner"], "e2e")
        api = Api(api_server.url, token)
        host = worker.host_name

        job = api("POST", f"/images/import?ref=e2e-busybox:1&host={host}", 202, data=busybox_tarball(tmp_path, "gz"),
                  headers={"Content-Type": "application/gzip"}).json()
        job = api.wait_job(job)
        image_id = job["result"]["image_id"]
        image = api("GET", f"/images/{image_id}", 200).json()
        assert image["ref"] == "e2e-busybox:1" and image["owner"] == "owner" and image["digest"].startswith("sha256:")
        from containers.transfer_model import Transfer

        assert not Transfer.objects.exists()  # the worker consumed the upload: the server deleted it

        made = api("POST", "/containers", 202, json={
            "image": "e2e-busybox:1", "host": host, "name": "hello",
            "command": ["sh", "-c", "echo hello from berth; echo second line"]}).json()
        pk = made["container"]["id"]
        api.wait_job(made["job"])
        row = api.wait_container(pk, ("exited",))
        assert row["exit_code"] == 0

        logs = api("GET", f"/containers/{pk}/logs", 200)
        assert logs.headers["Content-Type"].startswith("text/plain")
        assert logs.text == "hello from berth\nsecond line\n"
        tail = api("GET", f"/containers/{pk}/logs?tail=1&timestamps=1", 200).text
        assert tail.endswith("Z second line\n") and tail.count("\n") == 1
        with api.session.get(f"{api.url}/api/v1/containers/{pk}/logs?follow=1", stream=True, timeout=60) as follow:
            assert follow.status_code == 200
            assert b"".join(follow.iter_content(None)) == b"hello from berth\nsecond line\n"

        export = api.wait_job(api("POST", f"/containers/{pk}/export", 202).json())
        assert export["download_url"] == f"/api/v1/jobs/{export['id']}/download"
        download = api("GET", f"/jobs/{export['id']}/download", 200)
        assert download.headers["Content-Type"] == "application/x-tar"
        assert int(download.headers["Content-Length"]) == len(download.content) == export["result"]["size"]
        assert 'filename="hello.tar"' in download.headers["Content-Disposition"]
        with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
            names = tar.getnames()
        assert any(n.lstrip("./") == "bin/busybox" for n in names), names[:20]

        api.wait_job(api("DELETE", f"/containers/{pk}", 202).json())
        api("GET", f"/containers/{pk}", 404)
        api.wait_job(api("DELETE", f"/images/{image_id}", 202).json())
        api("GET", f"/images/{image_id}", 404)
        assert api("GET", "/containers?search=hello", 200).json()["count"] == 0
        from workers.engine.containers import ContainerManager

        assert ContainerManager(worker.state_root).list(all=True) == []
    finally:
        worker.discard()
        clean_state_root(Path(worker.state_root))
        for d in berth_cgroups() - cgroups_before:
            try:
                Path(d).rmdir()
            except OSError:
                pass
