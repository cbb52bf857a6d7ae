"""Live logs end to end: a real busybox container made by the host's ContainerManager (Berth's runtime
under the monitor, whose Redis sink points at the real redis-server), and a WebSocket client of the
logs consumer (webapp.asgi with the Redis channel layer). The json-file logs on disk are the truth."""

from __future__ import annotations

import json
import time
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
CHROMIUM = "/usr/bin/chromium"

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


# --- the viewer in a real browser ---------------------------------------------------------------------

@pytest.fixture
def web_server(transactional_db, live_redis, tmp_path):
    """The served ASGI server (tests.support: what `make run` uses) on a free port, sharing the test's
    database file and redis-server."""

    from tests.conftest import stop_process
    from tests.support import start_asgi_server

    proc, port = start_asgi_server(live_redis, tmp_path / "root", tmp_path / "server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def write(url: str, engine_id: str, lines: list[tuple[str, str]]) -> None:
    r = redis.Redis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for stream, text in lines:
        pipe.xadd(f"berth:logs:{engine_id}", {"stream": stream, "time": "2026-11-29T01:02:03.123456789Z",
                                              "log": text}, maxlen=10000, approximate=True)
    pipe.execute()
    r.close()


@pytest.mark.browser
def test_viewer_renders_safely_searches_pauses_and_survives_a_flood(web_server, live_redis):
    from django.template.loader import render_to_string
    from django.test import RequestFactory
    from playwright.sync_api import sync_playwright

    engine_id = uuid.uuid4().hex * 2
    user = get_user_model().objects.create_user("viewer-e2e", password="pw-viewer-e2e-123")
    row = Container.objects.create(name="c", host=Host.objects.create(name="h-view"), owner=user,
                                   engine_id=engine_id, state="running")
    client = Client()
    client.force_login(user)
    panel = render_to_string("containers/_logs.html", {"container": row}, request=RequestFactory().get("/"))
    page_html = ('<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" '
                 f'href="/static/css/berth.css"></head><body><main class="content">{panel}</main></body></html>')
    stranger = get_user_model().objects.create_user("stranger-e2e", password="pw-stranger-e2e-123")
    theirs = Container.objects.create(name="theirs", host=row.host, owner=stranger, state="running")
    other_html = page_html.replace(panel, render_to_string("containers/_logs.html", {"container": theirs},
                                                           request=RequestFactory().get("/")))
    hostile = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    write(live_redis, engine_id, [("stdout", "plain start\n"), ("stdout", "\x1b[31mred text\x1b[0m and plain\n"),
                                  ("stderr", "an error: needle\n"), ("stdout", hostile + "\n")])
    problems: list[str] = []
    try:
        with sync_playwright() as p:
            # The panel page is fulfilled by Playwright (no address of its own): Chromium's local network
            # checks would treat its WebSocket to 127.0.0.1 as a public page reaching into the LAN.
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"])
            ctx = browser.new_context(viewport={"width": 1000, "height": 800})
            ctx.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": web_server}])
            ctx.route(f"{web_server}/logs-panel/", lambda route: route.fulfill(
                status=200, content_type="text/html; charset=utf-8", body=page_html))
            ctx.route(f"{web_server}/logs-panel/other/", lambda route: route.fulfill(
                status=200, content_type="text/html; charset=utf-8", body=other_html))
            page = ctx.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{web_server}/logs-panel/")
            view = page.locator("[data-role=view]")
            page.wait_for_function("document.querySelectorAll('[data-role=view] .ln').length === 4")
            assert page.locator("[data-role=status]").inner_text() == "live"
            # Log text is text: no element from the hostile line, its characters shown as written.
            assert view.locator("img, script").count() == 0 and page.evaluate("window.__xss") is None
            assert view.locator(".ln").nth(3).locator(".tx").inner_text() == hostile
            # ANSI colours rendered (ansi_up's red), escape codes gone; stderr styled apart.
            red = view.locator(".ln").nth(1).locator("span[style*='color']")
            assert red.inner_text() == "red text" and "187,0,0" in red.get_attribute("style").replace(" ", "")
            assert view.locator(".ln.err").count() == 1 and "needle" in view.locator(".ln.err").inner_text()
            # Live lines arrive after the tail.
            write(live_redis, engine_id, [("stdout", "live needle one, needle two\n"), ("stderr", "live two\n")])
            page.wait_for_function("document.querySelectorAll('[data-role=view] .ln').length === 6")
            # Search highlights matches in the loaded lines (twice in one line, too) and steps through them.
            page.fill("[data-role=search]", "NEEDLE")
            page.wait_for_function("document.querySelector('[data-role=matches]').textContent === '3 matches'")
            assert view.locator("mark").all_inner_texts() == ["needle", "needle", "needle"]
            page.press("[data-role=search]", "Enter")
            page.press("[data-role=search]", "Enter")
            assert page.locator("[data-role=matches]").inner_text() == "2 of 3"
            page.fill("[data-role=search]", "one, need")  # a new query clears the old marks first
            page.wait_for_function("document.querySelector('[data-role=matches]').textContent === '1 match'")
            assert view.locator(".ln", has_text="live needle").locator(".tx").inner_text() == "live needle one, needle two"
            # Timestamps on demand; stream filter.
            assert not view.locator(".ts").first.is_visible()
            page.check("[data-role=timestamps]")
            assert view.locator(".ts").first.inner_text() == "2026-11-29 01:02:03.123"
            assert page.locator("[data-role=download-timestamps]").input_value() == "1"
            page.select_option("[data-role=streams]", "stderr")
            assert view.locator(".ln.out").first.is_hidden() and view.locator(".ln.err").first.is_visible()
            page.select_option("[data-role=streams]", "all")
            # Pause holds new lines back (and says so); resume shows them.
            page.click("[data-role=follow]")
            write(live_redis, engine_id, [("stdout", "while paused\n")])
            page.wait_for_function("document.querySelector('[data-role=notice]').textContent.includes('1 new line')")
            assert view.locator(".ln", has_text="while paused").count() == 0
            page.click("[data-role=follow]")
            page.wait_for_function("document.querySelectorAll('[data-role=view] .ln').length === 7")
            # A flood of 50,000 lines/s for 4 s, paused: the view says it is sampled and holds what comes (about
            # 1,000 lines/s); on resume at most MAX_PER_FRAME (2,000) lines become DOM per animation frame,
            # counted per mutation delivery (one follows each frame's render). The DOM stays capped.
            page.evaluate("""() => { window.__added = [];
                new MutationObserver((records) => {
                    let n = 0;
                    for (const r of records) for (const node of r.addedNodes) if (node.classList?.contains('ln')) n++;
                    if (n) window.__added.push(n);
                }).observe(document.querySelector('[data-role=view]'), {childList: true}); }""")
            page.click("[data-role=follow]")
            total, chunk = 200_000, 5_000
            start = time.monotonic()
            for i in range(0, total, chunk):
                write(live_redis, engine_id, [("stdout", f"\x1b[32mflood\x1b[0m {j}\n") for j in range(i, i + chunk)])
                pause = start + (i + chunk) / 50_000 - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            page.wait_for_function("document.querySelector('[data-role=notice]').textContent.includes('Sampled view')",
                                   timeout=30_000)
            # more lines held than one frame may render
            page.wait_for_function("(() => { const m = document.querySelector('[data-role=notice]').textContent"
                                   ".match(/Paused: ([0-9,]+) new line/); return m && +m[1].replace(/,/g, '') > 2000; })()",
                                   timeout=30_000)
            assert page.evaluate("window.__added") == []  # nothing rendered while paused
            page.click("[data-role=follow]")
            page.wait_for_function(f"Array.from(document.querySelectorAll('[data-role=view] .ln .tx'))"
                                   f".some(e => e.textContent === 'flood {total - 1}')", timeout=60_000)
            n_lines = view.locator(".ln").count()
            assert n_lines <= 5000
            assert view.locator(".ln.gap").count() > 0  # where lines were left out, the view says so
            page.wait_for_function("document.querySelector('[data-role=notice]').textContent"
                                   ".includes('left out of this view while it was sampled')", timeout=30_000)
            added = page.evaluate("window.__added")
            assert added[0] == 2000 and max(added) == 2000, added  # the held lines: 2,000 in the first frame, never more
            # Someone else's container: the panel says why it shows nothing, and stops trying.
            other = page.context.new_page()
            other.on("pageerror", lambda e: problems.append(str(e)))
            other.goto(f"{web_server}/logs-panel/other/")
            other.wait_for_function("document.querySelector('[data-role=notice]').textContent"
                                    ".includes('no longer exists, or you may not see it')")
            assert other.locator("[data-role=status]").inner_text() == "closed"
            browser.close()
    finally:
        r = redis.Redis.from_url(live_redis)
        r.delete(f"berth:logs:{engine_id}")
        r.close()
    assert problems == []
