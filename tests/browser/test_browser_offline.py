"""The containers list in Debian's chromium when a host stops heartbeating (issue 18): an open page turns the
container's badge to `unknown` live when the control plane's offline watch sees its host go, and back when it
returns; containers of the host that is up keep theirs."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from containers.models import Container, Host
from containers.offline_watch import Watch

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]


def sweep(tracker: Watch) -> None:
    """One pass of the watch in a thread of its own, as berth_run runs it (Playwright's loop owns this one)."""
    def run() -> None:
        try:
            tracker.sweep()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)


def test_an_open_list_shows_unknown_while_the_host_is_offline_and_the_truth_when_it_is_back(
        live_berth, browser, watch, problems):
    # mutant: events.container_event `"state": container.shown_state` → `"state": container.state`
    gone = Host.objects.create(name="gone-node", cpus=1, last_heartbeat=timezone.now())
    ghost = Container.objects.create(name="ghost", host=gone, image_ref="busybox:latest", owner=live_berth.user,
                                     state="running")
    page = watch(browser.new_page(viewport={"width": 1366, "height": 900}))
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/")
    badge = page.locator(f'#container-{ghost.pk} [data-field="state"]')
    assert badge.inner_text() == "running"
    page.locator("#live-status", has_text="live").wait_for()  # the page receives events from here on

    tracker = Watch()
    sweep(tracker)  # both hosts online: nothing to say
    Host.objects.filter(pk=gone.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    sweep(tracker)
    page.locator(f'#container-{ghost.pk} .badge.unknown[data-field="state"]').wait_for()
    assert badge.inner_text() == "unknown"
    assert page.locator(f"#container-{ghost.pk}").get_attribute("class") == "state-unknown"

    Host.objects.filter(pk=gone.pk).update(last_heartbeat=timezone.now())
    sweep(tracker)
    page.locator(f'#container-{ghost.pk} .badge.running[data-field="state"]').wait_for()
    page.reload()
    assert page.locator(f'#container-{ghost.pk} [data-field="state"]').inner_text() == "running"
    assert problems == []
