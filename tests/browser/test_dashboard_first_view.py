"""What the container page shows first, in Debian's chromium against a live Berth: a short-lived container's
output is in view on arrival, at a laptop's 1366x768 and on a 375 px phone, without scrolling; a running
container keeps its actions first, and Stop counts down the seconds to SIGKILL until the container is gone."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Image

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

# Where a line of the log view is, and whether the page was scrolled.
WHERE = """text => { const v = document.querySelector('[data-logs] [data-role=view]');
    const r = [...v.querySelectorAll('*')].find(e => e.textContent.includes(text) && !e.children.length)
        .getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, height: window.innerHeight, scrolled: window.scrollY}; }"""


def test_short_lived_output_in_view_and_the_stop_countdown(live_berth, browser, watch, problems, wait_job, wait_for):
    busybox = Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace="")
    box, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                         name="once", spec={"command": "sh -c 'echo short-lived-output; exit 2'"})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    # sh as PID 1 without a trap ignores SIGTERM: Stop ends with SIGKILL when its countdown runs out.
    stubborn, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                              name="stubborn", spec={"command": "sh -c 'while :; do sleep 0.2; done'"})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    wait_for(lambda: Container.objects.get(pk=box.pk).state == "exited", what="the container to exit")
    for viewport in ({"width": 1366, "height": 768}, {"width": 375, "height": 740}):
        ctx = browser.new_context(viewport=viewport)
        page = watch(ctx.new_page())
        live_berth.login(page)
        page.goto(f"{live_berth.url}/containers/{box.pk}/")
        page.locator("[data-logs] [data-role=view]", has_text="short-lived-output").wait_for(timeout=60_000)
        where = page.evaluate(WHERE, "short-lived-output")
        assert where["scrolled"] == 0 and 0 <= where["top"] and where["bottom"] <= where["height"], (viewport, where)
        ctx.close()

    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(f"{live_berth.url}/containers/{stubborn.pk}/")
    page.wait_for_selector("#live-status.on")
    stop = page.locator("form[data-action=stop] button")
    assert stop.evaluate("b => b.getBoundingClientRect().bottom <= window.innerHeight")  # actions first
    page.fill("form[data-action=stop] input[name=timeout]", "10")
    stop.click()
    status = "document.querySelector('[data-role=action-status]').textContent"
    page.wait_for_function(f"{status}.startsWith('Stopping: SIGKILL in 10 s')")
    page.wait_for_function(f"{status}.startsWith('Stopping: SIGKILL in 9 s')", timeout=15_000)
    page.wait_for_function(f"{status} === 'Stopped (exited).'", timeout=60_000)
    assert Container.objects.get(pk=stubborn.pk).state == "exited"
    ctx.close()
    assert problems == []
