"""Live logs end to end: a real busybox container made by the host's ContainerManager (Berth's runtime
under the monitor, whose Redis sink points at the real redis-server), and a WebSocket client of the
logs consumer (webapp.asgi with the Redis channel layer). The json-file logs on disk are the truth."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from containers import consumers_logs
from containers.models import Container, Host
from webapp.asgi import application

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[2]

class LogHost:
    """A host's ContainerManager whose monitor sends lines to the test's redis-server."""

    def __init__(self, root: Path, redis_url: str):
        from workers.engine.containers import ContainerManager

        self.root = root
        self.sync = root / "sync"  # bind-mounted at /sync: the test says "go" by creating a file
        self.sync.mkdir()
        self.m = ContainerManager(root, log_redis_url=redis_url, log_max_size=1024 * 1024, log_max_files=50)
        self.ids: list[str] = []

    def run(self, script: str) -> str:
        """Create and start busybox `sh -c script` (waiting for /sync/go); returns its 64-hex engine id."""
        c = self.m.create("busybox", name=f"logs-{len(self.ids)}", command=["sh", "-c", script],
                          mounts=[f"{self.sync}:/sync"])
        self.ids.append(c["id"])
        self.m.start(c["id"])
        return c["id"]

    def go(self) -> None:
        (self.sync / "go").write_text("")

    def disk_lines(self, cid: str) -> list[dict]:
        """Every json-file record, rotated files (oldest first) included."""
        out = []
        for f in self.m.log_files(cid):
            out += [json.loads(line) for line in f.read_text().splitlines()]
        return out


@pytest.fixture
def log_host(redis_url, live_redis, tmp_path_factory):
    from tests.engine.containers.conftest import teardown_root
    from workers.engine.images.base import ensure_base_images
    from workers.engine.images.store import ImageStore

    root = tmp_path_factory.mktemp("lg")  # short: the monitor's socket path has a length limit
    made: list[str] = []
    try:
        ensure_base_images(ImageStore(root))
        host = LogHost(root, redis_url)
        host.ids = made
        yield host
    finally:
        teardown_root(root)
        r = redis.Redis.from_url(redis_url)
        for cid in made:
            r.delete(f"berth:logs:{cid}")
        r.close()


@sync_to_async
def owner_and_row(engine_id: str) -> tuple[list[tuple[bytes, bytes]], int]:
    user = get_user_model().objects.create_user(f"u{uuid.uuid4().hex[:6]}", password="pw-logs-e2e-123")
    host = Host.objects.create(name=f"logs-{uuid.uuid4().hex[:6]}")
    row = Container.objects.create(name="c", host=host, owner=user, engine_id=engine_id, state="running")
    client = Client()
    client.force_login(user)
    headers = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
               (b"origin", b"http://127.0.0.1")]
    return headers, row.pk


async def ws(pk: int, headers, tail: int) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/containers/{pk}/logs/?tail={tail}", headers=headers)
    connected, _ = await comm.connect(timeout=10)
    assert connected
    return comm


async def collect(comm: WebsocketCommunicator, until, timeout: float = 90) -> list[dict]:
    msgs: list[dict] = []
    while not until(msgs):
        msg = json.loads(await comm.receive_from(timeout=timeout))
        assert msg["type"] == "lines", msg
        msgs.append(msg)
    return msgs


@pytest.mark.root
@pytest.mark.django_db(transaction=True)
async def test_container_lines_arrive_live_over_the_websocket(log_host):
    # The container waits for a file the test creates, so the client is surely following first.
    script = ("while [ ! -e /sync/go ]; do usleep 20000; done; "
              "for i in $(seq 1 30); do echo \"out $i\"; echo \"err $i\" >&2; usleep 10000; done")
    cid = await sync_to_async(log_host.run)(script)
    headers, pk = await owner_and_row(cid)
    comm = await ws(pk, headers, tail=100)
    first = json.loads(await comm.receive_from(timeout=10))
    assert first["tail"] is True and first["lines"] == []
    log_host.go()
    msgs = await collect(comm, lambda ms: sum(len(m["lines"]) for m in ms) >= 60)
    lines = [line for m in msgs for line in m["lines"]]
    assert all(m["dropped"] == 0 for m in msgs)
    assert [line["log"] for line in lines if line["stream"] == "stdout"] == [f"out {i}\n" for i in range(1, 31)]
    assert [line["log"] for line in lines if line["stream"] == "stderr"] == [f"err {i}\n" for i in range(1, 31)]
    await comm.disconnect()
    st = await sync_to_async(log_host.m.wait)(cid, timeout=60)
    assert st["exit_code"] == 0
    # What the browser saw is what is on disk, in the same order and with the same times.
    disk = await sync_to_async(log_host.disk_lines)(cid)
    assert [(d["stream"], d["log"], d["time"]) for d in disk] == [(x["stream"], x["log"], x["time"]) for x in lines]
    # A new viewer gets the same lines replayed from the tail.
    comm = await ws(pk, headers, tail=100)
    replay = json.loads(await comm.receive_from(timeout=10))
    assert replay["tail"] is True and [x["id"] for x in replay["lines"]] == [x["id"] for x in lines]
    await comm.disconnect()


@pytest.mark.root
@pytest.mark.django_db(transaction=True)
async def test_flood_loses_nothing_on_disk_while_the_view_is_sampled(log_host):
    total = 300_000  # busybox seq as fast as the pipe takes it (~several 10k lines/s here)
    script = f"while [ ! -e /sync/go ]; do usleep 20000; done; seq 1 {total}; echo done >&2"
    cid = await sync_to_async(log_host.run)(script)
    headers, pk = await owner_and_row(cid)
    comm = await ws(pk, headers, tail=0)
    assert json.loads(await comm.receive_from(timeout=10))["tail"] is True
    log_host.go()

    msgs = await collect(comm, lambda ms: sum(len(m["lines"]) + m["dropped"] for m in ms) >= total + 1,
                         timeout=120)
    st = await sync_to_async(log_host.m.wait)(cid, timeout=120)
    assert st["exit_code"] == 0
    await comm.disconnect()

    # Disk: every line, in order, across the rotated files.
    disk = await sync_to_async(log_host.disk_lines)(cid)
    out = [d["log"] for d in disk if d["stream"] == "stdout"]
    assert len(out) == total and out[0] == "1\n" and out[-1] == f"{total}\n"
    assert out == [f"{i}\n" for i in range(1, total + 1)]
    assert len(await sync_to_async(log_host.m.log_files)(cid)) >= 3  # it did rotate
    # WebSocket: every line is either shown or counted as left out, and no message asks the browser for more
    # than a tick's share. Whether this machine writes fast enough to be sampled is not asserted here (a
    # rate); tests/webapp/test_logs_stream.py makes a flood that must be sampled, whatever the machine.
    sent = [line for m in msgs for line in m["lines"]]
    dropped = sum(m["dropped"] for m in msgs)
    assert len(sent) + dropped == total + 1
    assert all(m["mode"] == "sampled" for m in msgs if m["dropped"])  # a left-out line is always said so
    assert all(len(m["lines"]) <= consumers_logs.MAX_PER_TICK for m in msgs if not m["tail"])
    assert all(len(m["lines"]) <= consumers_logs.SAMPLE_PER_TICK for m in msgs if m["mode"] == "sampled")
    shown = [int(x["log"]) for x in sent if x["stream"] == "stdout"]
    assert shown == sorted(shown) and len(set(shown)) == len(shown)
    assert sent[-1]["log"] == "done\n" or shown[-1] == total


# The viewer in a real browser, on the real container page with a real container and monitor:
# tests/browser/test_promises.py (ANSI, hostile text, search, timestamps, pause, download) and
# tests/browser/test_logs_viewer.py (a flood: sampled, held while paused, rendered a frame at a time).
