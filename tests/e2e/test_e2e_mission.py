"""The mission's own example (issue #13), on the real stack: a real redis-server (the control plane's), a real
Celery worker, the real engine with netavark and aardvark-dns, and a Debian image made by the project's
base-image builder (debootstrap) with two extra Debian packages.

Alice runs `db` (Debian's redis-server) and `web` (a python3 stdlib web app that counts visits in redis,
reached by the name `db`) on her network `shop`, publishes web's port on 127.0.0.1, and asks twice: 1, then 2.
Everything goes through the services (the path of the API and the dashboard) and jobs.

Cost: the image is built by the image.seed job. A fresh machine runs debootstrap against the mirror apt uses
(minutes); the worker is given $BERTH_BASE_CACHE, so the rootfs tar is kept under CACHE keyed by the package
list, suite, mirror, debootstrap's and the builder's versions, and a later run only imports it (seconds).
Measured on the 2-core development machine at load 5-8: debootstrap with python3 and redis-server 2 min 2 s
(a 174 MB layer); the whole test with the cache 42 s, of which the image import about 4 s; the whole test with
an empty cache (a fresh machine's path, through the worker) 4 min 54 s at load 13-19."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from containers import jobs, services
from containers.models import Container, Image, Job, Network
from containers.services import networks as services_networks
from tests.e2e.test_container_jobs import host_worker  # noqa: F401
from workers.engine.images.debian import debian_ref

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# Kept across runs on purpose (see above); BERTH_TEST_BASE_CACHE=<empty dir> forces a fresh build.
CACHE = os.environ.get("BERTH_TEST_BASE_CACHE") or "/var/cache/berth-tests/base"
PACKAGES = ["python3", "redis-server"]
BUILD_TIMEOUT = 1800  # debootstrap on a fresh machine; a cached build is imported in seconds

# RESP by hand over a socket: the app needs nothing but python3.
APP = r'''
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

def redis(*args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("db", 6379), timeout=5) as s:
        s.sendall(out)
        return s.makefile("rb").readline().decode().strip()

class Visits(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            reply = redis(b"PING") if self.path == "/ping" else redis(b"INCR", b"visits")
            code, body = (200, reply[1:]) if reply[:1] in "+:" else (500, reply)
        except OSError as exc:
            code, body = 503, str(exc)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

HTTPServer(("0.0.0.0", 8000), Visits).serve_forever()
'''


def run(user, worker, wait_job, name: str, image: str, command: list[str], **spec) -> Container:
    row, job = services.create_container(user, host=worker.host, image=image, name=name, command=command, **spec)
    job = wait_job(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    return Container.objects.get(pk=row.pk)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


@pytest.mark.timeout(BUILD_TIMEOUT + 300)  # the suite's 300 s is shorter than a fresh build on a loaded machine
def test_a_web_app_counts_visits_in_redis_reached_by_name(host_worker, wait_job, wait_for):  # noqa: F811
    alice = get_user_model().objects.create_user("alice", password="pw-alice-123")
    w = host_worker("mission", env={"BERTH_BASE_CACHE": CACHE})
    seeded = wait_job(jobs.submit("image.seed", w.host, params={"include": PACKAGES}), timeout=BUILD_TIMEOUT)
    assert seeded.state == Job.State.SUCCEEDED, seeded.error
    ref = debian_ref(PACKAGES)
    assert ref == "debian:bookworm_python3_redis-server" and ref in seeded.result["made"]
    assert Image.objects.get(host=w.host, name="debian", tag=ref.split(":")[1]).shared

    net, job = services_networks.create_network(alice, host=w.host, name="shop", subnet="10.231.61.0/24")
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    db = run(alice, w, wait_job, "db", ref, ["redis-server", "--save", "", "--appendonly", "no",
                                             "--protected-mode", "no", "--bind", "0.0.0.0"], networks=["shop"])
    web = run(alice, w, wait_job, "web", ref, ["python3", "-c", APP], networks=["shop"], ports=["8000"])
    [port] = web.network["ports"]
    assert port["host_ip"] == "127.0.0.1"
    url = f"http://127.0.0.1:{port['host_port']}"

    # Ready when web answers and reaches db by name (PING counts nothing): both processes are up.
    wait_for(lambda: get(f"{url}/ping") == (200, "PONG"), timeout=60, what="web reaching db by name")
    assert get(url) == (200, "1")
    assert get(url) == (200, "2")

    for row in (web, db):
        assert wait_job(services.container_action(alice, row, "remove", params={"force": True})).state == "succeeded"
    assert wait_job(services_networks.remove_network(alice, Network.objects.get(pk=net.pk))).state == "succeeded"
