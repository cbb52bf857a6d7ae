"""Transfers cut in the middle leave nothing behind: the web server (uvicorn) killed mid-upload and mid-push, the
worker killed mid-fetch and mid-push. A relay (tests/gate_proxy.py) between the worker and the web server holds
the transfer at a known byte so the kill lands inside it; both sides' staging dirs are listed afterwards, and a
job whose worker died is re-run by the next worker to success."""

from __future__ import annotations

import os
import random
import signal
import socket
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from containers import jobs
from containers.api.auth import create_token
from containers.models import Image, Job
from containers.transfer_model import Transfer
from tests.conftest import stop_process
from tests.gate_proxy import GateProxy
from tests.support import clean_state_root, start_asgi_server
from tests.transfers import submit_upload, tar_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MiB = 1 << 20


def web_files(transfers: Path) -> list[str]:
    return sorted(f"{d}/{p.name}" for d in ("uploads", "downloads") if (transfers / d).is_dir()
                  for p in (transfers / d).iterdir())


def host_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "transfers").iterdir()) if (root / "transfers").is_dir() else []


def test_a_side_killed_mid_transfer_leaves_no_file(berth_worker, live_redis, wait_job, wait_for, tmp_path, settings):
    transfers = tmp_path / "web-transfers"
    settings.BERTH_TRANSFER_DIR = transfers

    def start_web():
        return start_asgi_server(live_redis, tmp_path / "web-root", tmp_path / "web.log",
                                 BERTH_TRANSFER_DIR=str(transfers))

    web, port = start_web()
    proxy = GateProxy(port)
    root = tmp_path / "host-root"
    env = {"BERTH_CONTROL_URL": proxy.url}
    worker = None
    try:
        worker = berth_worker("cut-host", state_root=root, env=env)
        host = worker.host
        user = get_user_model().objects.create_user("cutter", password="pw-cutter-123")
        assert wait_job(jobs.submit("image.seed", host, params={}), timeout=180).state == Job.State.SUCCEEDED

        # 1. The web server killed while a client's upload is half sent: nothing staged.
        token = create_token(user, "cut")[1]
        body_len = 4 * MiB
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"POST /api/v1/images/import?ref=half:1&host={host.name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/x-tar\r\n"
                      f"Content-Length: {body_len}\r\n\r\n".encode())
            s.sendall(b"\0" * MiB)
            os.kill(web.pid, signal.SIGKILL)
            web.wait()
        assert web_files(transfers) == []
        web, port = start_web()
        proxy.target_port = port

        # 2. The worker killed while it fetches an upload: the host keeps nothing (the file had no name), the
        #    web server keeps the upload for the job, and the next worker re-runs the job to success.
        data = tar_bytes({"blob.bin": random.Random(11).randbytes(4 * MiB)})
        proxy.stop_at(b"GET /internal/transfers/", "down", MiB)
        job, staged = submit_upload("image.import", host, data, requested_by=user, ref="big:1")
        wait_for(proxy.held.is_set, timeout=120, what="the worker's fetch to be held mid-way")
        assert host_files(root) == []
        worker.kill9()
        proxy.open_gate(cut=True)
        assert host_files(root) == [] and staged.exists() and web_files(transfers) == [f"uploads/{staged.name}"]
        worker = berth_worker("cut-host", state_root=root, env=env)
        job = wait_job(job, timeout=180)
        assert job.state == Job.State.SUCCEEDED and job.attempts == 2, (job.state, job.error, job.attempts)
        assert Image.objects.filter(host=host, name="big").exists()
        assert web_files(transfers) == [] and host_files(root) == [] and not Transfer.objects.exists()

        # 3. The worker killed while it pushes a download: no file on either side; the re-run delivers it.
        base = Image.objects.get(host=host, name="busybox", tag="latest")
        proxy.stop_at(b"PUT /internal/transfers/", "up", 256 * 1024)
        save = jobs.submit("image.save", host, target=base, requested_by=user, params={"format": "docker-archive"})
        wait_for(proxy.held.is_set, timeout=120, what="the worker's push to be held mid-way")
        worker.kill9()
        proxy.open_gate(cut=True)
        assert host_files(root) == [] and web_files(transfers) == []
        worker = berth_worker("cut-host", state_root=root, env=env)
        save = wait_job(save, timeout=180)
        assert save.state == Job.State.SUCCEEDED, save.error
        assert web_files(transfers) == [f"downloads/{save.pk}"] and host_files(root) == []
        assert (transfers / "downloads" / str(save.pk)).stat().st_size == save.result["size"]

        # 4. The web server killed while a worker pushes: the job fails saying why, no file on either side.
        proxy.stop_at(b"PUT /internal/transfers/", "up", 256 * 1024)
        again = jobs.submit("image.save", host, target=base, requested_by=user, params={"format": "oci-archive"})
        wait_for(proxy.held.is_set, timeout=120, what="the second push to be held mid-way")
        os.kill(web.pid, signal.SIGKILL)
        web.wait()
        proxy.open_gate(cut=True)
        again = wait_job(again, timeout=120)
        assert again.state == Job.State.FAILED and "control plane" in again.error, again.error
        assert "Traceback" not in again.error
        web, port = start_web()
        proxy.target_port = port
        assert web_files(transfers) == [f"downloads/{save.pk}"] and host_files(root) == []
        assert not Transfer.objects.exists(), list(Transfer.objects.values("kind", "job_id", "job__state", "expires"))
    finally:
        proxy.close()
        if worker is not None:
            worker.discard()
        stop_process(web)
        clean_state_root(root)
