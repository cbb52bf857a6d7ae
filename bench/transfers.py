"""Transfers benchmark: memory and throughput of a file's trip between the web server and a worker
(containers/transfer.py), to show both stay at constant memory whatever the file's size.

    .venv/bin/python bench/transfers.py [--mib 512]

Real and local: a temporary SQLite database and state root, the ASGI server of `make run` (uvicorn) with its
own staging dir. Measured for a file of --mib MiB:
1. upload: a client streams it as a raw request body to POST /api/v1/images/import (staged, job queued);
2. fetch: the worker's code (workers/transfer.fetched_upload) reads it back over HTTP with the job's secret;
3. push: the worker's code (workers/transfer.push_download) sends it as a download, then a client downloads it.
For each: seconds, MiB/s, and the peak resident memory (VmHWM) of the web server and of this process (the
"worker" side) — before and after, so the growth is what the transfer cost. Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def self_peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-transfers-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        redis_port = probe.getsockname()[1]
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update({"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0","DJANGO_SETTINGS_MODULE": "webapp.settings", "BERTH_STATE_ROOT": str(work / "root"),
                       "BERTH_TRANSFER_DIR": str(work / "transfers"), "BERTH_SECRET_KEY": "bench-only",
                       "BERTH_MAX_UPLOAD_BYTES": str(64 << 30), "BERTH_API_THROTTLE_WRITE": "100000/min"})
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth import get_user_model

    from containers.api.auth import create_token
    from containers.management.commands.berth_run import asgi_server_command
    from containers.models import Host, Job

    user = get_user_model().objects.create_user("bench")
    host = Host.objects.create(name="bench-host", cpus=2, memory_bytes=1 << 30)
    token = create_token(user, "bench")[1]
    big = work / "big.tar"
    with open(big, "wb") as f:  # a tar header then zeros: the service only looks at the first 512 bytes
        import tarfile

        info = tarfile.TarInfo("zeros")
        info.size = args.mib * (1 << 20) - 1024
        f.write(info.tobuf())
        f.truncate(args.mib * (1 << 20))
    size = big.stat().st_size
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    web = subprocess.Popen(asgi_server_command("127.0.0.1", port, fd=sock.fileno()), cwd=REPO, env=env,
                           pass_fds=[sock.fileno()], stdout=open(work / "web.log", "wb"), stderr=subprocess.STDOUT)
    sock.close()
    settings.BERTH_CONTROL_URL = f"http://127.0.0.1:{port}"
    import http.client

    from containers import jobs as job_dispatch

    job_dispatch.send = lambda job: None  # no broker: the job is only a row here
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/login/")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        rows = []

        def row(what: str, seconds: float, web_before: int, web_after: int, me_before: int, me_after: int) -> None:
            rows.append((what, seconds, size / (1 << 20) / seconds, web_before, web_after, me_before, me_after))

        # 1. upload
        w0, m0 = vm_hwm_kib(web.pid), self_peak_kib()
        t = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=1 << 20)
        with open(big, "rb") as f:
            c.request("POST", f"/api/v1/images/import?ref=big:1&host={host.name}", body=f,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar",
                               "Content-Length": str(size)})
        r = c.getresponse()
        body = r.read()
        assert r.status == 202, body[:300]
        row("upload (client -> web staging)", time.monotonic() - t, w0, vm_hwm_kib(web.pid), m0, self_peak_kib())
        job = Job.objects.get(kind="image.import")

        # 2. fetch, as the worker does
        from workers import transfer as worker_transfer

        w0, m0 = vm_hwm_kib(web.pid), self_peak_kib()
        t = time.monotonic()
        with worker_transfer.fetched_upload(job) as local:
            assert os.fstat(local.fileno()).st_size == size
        row("fetch (web -> worker, GET)", time.monotonic() - t, w0, vm_hwm_kib(web.pid), m0, self_peak_kib())
        worker_transfer.consume_upload(job)

        # 3. push, as the worker does, then a client's download
        save = Job.objects.create(kind="image.save", host=host, requested_by=user, state=Job.State.RUNNING)
        w0, m0 = vm_hwm_kib(web.pid), self_peak_kib()
        t = time.monotonic()
        with open(big, "rb") as f:
            result = worker_transfer.push_download(save, f, "big.tar", "application/x-tar")
        row("push (worker -> web, PUT)", time.monotonic() - t, w0, vm_hwm_kib(web.pid), m0, self_peak_kib())
        Job.objects.filter(pk=save.pk).update(state=Job.State.SUCCEEDED, result=result)
        w0 = vm_hwm_kib(web.pid)
        t = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("GET", f"/api/v1/jobs/{save.pk}/download", headers={"Authorization": f"Bearer {token}"})
        r = c.getresponse()
        got = 0
        while chunk := r.read(1 << 20):
            got += len(chunk)
        assert r.status == 200 and got == size, (r.status, got)
        row("download (web -> client)", time.monotonic() - t, w0, vm_hwm_kib(web.pid), 0, 0)

        print(f"Transfers of a {args.mib} MiB file; peak resident memory (VmHWM) before -> after, MiB")
        print(f"{'':34} {'s':>7} {'MiB/s':>8} {'web server':>18} {'worker side':>18}")
        for what, s, rate, wb, wa, mb, ma in rows:
            me = f"{mb / 1024:7.1f} -> {ma / 1024:7.1f}" if ma else f"{'-':>18}"
            print(f"{what:34} {s:7.2f} {rate:8.0f} {wb / 1024:7.1f} -> {wa / 1024:7.1f} {me}")
    finally:
        web.terminate()
        web.wait(30)
        redis.terminate()
        redis.wait(30)
        if os.environ.get("BENCH_KEEP"):
            print((work / "web.log").read_text()[-3000:])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
