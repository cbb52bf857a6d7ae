"""The containers list after its events socket (re)opens: the page asks for the state of every row (a resync),
because events sent before the socket joined are not replayed. What it learns that way must show in the state
summary, and an answer read from the database before an event arrived must not undo that event.

Fresh-clone run 34: the summary stayed "3 running" while the database said one had exited."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Image

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

LOOP = "sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.2; done'"
SUMMARY = "document.querySelector('[data-role=state-summary]').textContent"


def _running(live_berth, wait_job, *names: str) -> list[Container]:
    busybox = Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace="")
    made = []
    for name in names:
        container, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                                   name=name, spec={"command": LOOP})
        assert wait_job(job, timeout=60).state == "succeeded", job.error
        made.append(container)
    return made


def _list_page(live_berth, browser, watch):
    page = watch(browser.new_context(viewport={"width": 1366, "height": 900}).new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/")
    page.wait_for_selector("#live-status.on")
    return page


def _badge(page, container: Container) -> str:
    return page.text_content(f'#containers tr[data-container-id="{container.pk}"] [data-field=state]').strip()


def test_what_a_resync_learns_shows_in_the_summary(live_berth, browser, watch, problems, wait_job):
    a, b = _running(live_berth, wait_job, "sum-a", "sum-b")
    page = _list_page(live_berth, browser, watch)
    page.wait_for_function(f"{SUMMARY} === '2 running'")
    # an exit whose event went out before the page's socket joined: only the database knows it
    Container.objects.filter(pk=b.pk).update(state="exited", exit_code=0)
    page.evaluate("document.dispatchEvent(new CustomEvent('berth:open'))")  # what the socket's open does
    page.wait_for_function(f"document.querySelector('#containers tr[data-container-id=\"{b.pk}\"] "
                           "[data-field=state]').textContent.trim() === 'exited'")
    page.wait_for_function(f"{SUMMARY} === '1 exited · 1 running'")
    assert _badge(page, a) == "running"


def test_a_resync_answer_read_before_an_event_does_not_undo_it(live_berth, browser, watch, problems, wait_job):
    (c,) = _running(live_berth, wait_job, "held")
    page = _list_page(live_berth, browser, watch)
    page.wait_for_function(f"{SUMMARY} === '1 running'")
    held = []
    page.route("**/containers/state/**", lambda route: held.append((route, route.fetch())))
    page.evaluate("document.dispatchEvent(new CustomEvent('berth:open'))")
    for _ in range(100):  # the resync's request, answered from the database now ("running"), held back
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page did not resync"
    assert '"running"' in held[0][1].text()
    stop = services.container_action(live_berth.user, Container.objects.get(pk=c.pk), "stop", params={})
    assert wait_job(stop, timeout=60).state == "succeeded", stop.error
    page.wait_for_function(f"{SUMMARY} === '1 exited'")  # the stop's event
    route, answer = held[0]
    route.fulfill(response=answer)  # the old answer arrives after the event
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")  # its handler has run
    assert _badge(page, c) == "exited"
    assert page.evaluate(SUMMARY) == "1 exited"
    page.unroute("**/containers/state/**")
