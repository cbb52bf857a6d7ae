"""The live log viewer under a flood, on the real container page: a real busybox container writing as fast as
its pipe takes (the real monitor writes the json-file and feeds the Redis stream; the real consumer samples),
watched paused in Debian's chromium. The view says it is sampled, holds what comes while paused, and on resume
turns at most MAX_PER_FRAME (2,000) lines into DOM per animation frame; the DOM stays capped."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Job
from tests.browser.pages import login, off_loop, running

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

# Floods until the test creates /sync/stop, then, slowly enough to be shown live, says it is done.
FLOOD = ("while [ ! -e /sync/go ]; do sleep 0.1; done; "
         "while [ ! -e /sync/stop ]; do seq 1 5000 | sed 's/^/flood /'; done; sleep 1; echo done; exec sleep 600")


def test_a_flood_is_sampled_held_while_paused_and_rendered_a_frame_at_a_time(
        live_berth, browser, watch, problems, wait_job, wait_for, tmp_path):
    sync = tmp_path / "bind" / "sync"  # under the dir the host lets non-superusers bind-mount
    sync.mkdir()
    live_berth.worker.host.refresh_from_db()  # its facts, as the heartbeat reported them
    row, job = off_loop(services.create_container, live_berth.user, host=live_berth.worker.host,
                        image="busybox:latest", name="flood", mounts=[f"{sync}:/sync"], command=["sh", "-c", FLOOD])
    assert wait_job(job).state == Job.State.SUCCEEDED, job.error
    running(wait_for, row)
    page = watch(browser.new_context(viewport={"width": 1000, "height": 800}).new_page())
    login(page, live_berth, live_berth.user)
    page.goto(f"{live_berth.url}/containers/{row.pk}/")
    page.wait_for_function("document.querySelector('[data-role=status]').textContent === 'live'", timeout=30_000)
    view = page.locator("[data-role=view]")
    # Count the log lines each mutation delivery adds (one follows each frame's render).
    page.evaluate("""() => { window.__added = [];
        new MutationObserver((records) => {
            let n = 0;
            for (const r of records) for (const node of r.addedNodes) if (node.classList?.contains('ln')) n++;
            if (n) window.__added.push(n);
        }).observe(document.querySelector('[data-role=view]'), {childList: true}); }""")
    page.click("[data-role=follow]")  # paused before the flood starts
    (sync / "go").touch()
    page.wait_for_function("document.querySelector('[data-role=notice]').textContent.includes('Sampled view')",
                           timeout=60_000)
    # More lines held than one frame may render; then the container stops flooding.
    page.wait_for_function("(() => { const m = document.querySelector('[data-role=notice]').textContent"
                           ".match(/Paused: ([0-9,]+) new line/); return m && +m[1].replace(/,/g, '') > 2000; })()",
                           timeout=60_000)
    (sync / "stop").touch()
    assert page.evaluate("window.__added") == []  # nothing rendered while paused
    page.click("[data-role=follow]")
    page.wait_for_function("[...document.querySelectorAll('[data-role=view] .ln .tx')]"
                           ".some(e => e.textContent === 'done')", timeout=60_000)
    assert view.locator(".ln").count() <= 5000
    assert view.locator(".ln.gap").count() > 0  # where lines were left out, the view says so
    page.wait_for_function("document.querySelector('[data-role=notice]').textContent"
                           ".includes('left out of this view while it was sampled')", timeout=30_000)
    added = page.evaluate("window.__added")
    assert added[0] == 2000 and max(added) == 2000, added  # the held lines: 2,000 in the first frame, never more
    assert problems == []
