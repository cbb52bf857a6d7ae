"""What the container page shows first, in Debian's chromium against a live Berth: a short-lived container's
output is in view on arrival, at a laptop's 1366x768 and on a 375 px phone, without scrolling."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Image

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]


def test_a_short_lived_containers_output_is_in_view_without_scrolling(live_berth, browser, watch, problems,
                                                                      wait_job, wait_for):
    busybox = Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace="")
    box, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                         name="once", spec={"command": "sh -c 'echo short-lived-output; exit 2'"})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    wait_for(lambda: Container.objects.get(pk=box.pk).state == "exited", what="the container to exit")
    for viewport in ({"width": 1366, "height": 768}, {"width": 375, "height": 740}):
        ctx = browser.new_context(viewport=viewport)
        page = watch(ctx.new_page())
        live_berth.login(page)
        page.goto(f"{live_berth.url}/containers/{box.pk}/")
        line = page.locator("[data-logs] [data-role=view]", has_text="short-lived-output")
        line.wait_for(timeout=60_000)
        where = page.evaluate("""() => { const v = document.querySelector('[data-logs] [data-role=view]');
            const r = [...v.querySelectorAll('*')].find(e => e.textContent.includes('short-lived-output')
                && !e.children.length).getBoundingClientRect();
            return {top: r.top, bottom: r.bottom, height: window.innerHeight, scrolled: window.scrollY}; }""")
        assert where["scrolled"] == 0 and 0 <= where["top"] and where["bottom"] <= where["height"], (viewport, where)
        ctx.close()
    assert problems == []
