"""The containers list as a daily tool, in Debian's chromium against a live Berth: a state summary, search by
name/image/host/label, a state filter, sortable columns, per-row quick actions that follow the row's state;
and the container page's section bar (Logs, Downloads, Inspect, Jobs one click away)."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Image

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

LOOP = "sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.2; done'"


def visible_names(page) -> list[str]:
    return page.eval_on_selector_all("#containers tr[data-container-id]:not([hidden])", "rs => rs.map(r => r.dataset.name)")


def test_search_filter_sort_summary_quick_actions_and_sections(live_berth, browser, watch, problems, wait_job,
                                                             wait_for):
    busybox = Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace="")
    made = {}
    for name, command, labels in (("web-1", LOOP, {"app": "web"}), ("db-1", LOOP, {"app": "db"}),
                                  ("job-1", "true", {})):
        container, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                                   name=name, spec={"command": command, "labels": labels})
        assert wait_job(job, timeout=60).state == "succeeded", job.error
        made[name] = container
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/")
    page.wait_for_selector("#live-status.on")
    summary = page.locator("[data-role=state-summary]")
    page.wait_for_function("document.querySelector('[data-role=state-summary]').textContent === "
                           "'1 exited · 2 running'", timeout=60_000)

    page.fill("[data-role=list-search]", "app=web")
    assert visible_names(page) == ["web-1"]
    assert page.locator("[data-role=list-count]").inner_text() == "1 of 3 shown"
    assert "q=app%3Dweb" in page.url
    # Search by name, image and host too (each row carries them), and the address keeps the query.
    page.fill("[data-role=list-search]", "db")
    assert visible_names(page) == ["db-1"]
    page.fill("[data-role=list-search]", "busybox")
    assert len(visible_names(page)) == 3
    page.fill("[data-role=list-search]", live_berth.worker.host.name)
    assert len(visible_names(page)) == 3
    page.fill("[data-role=list-search]", "no-such-thing")
    assert visible_names(page) == [] and page.locator("[data-role=list-count]").inner_text() == "0 of 3 shown"
    page.fill("[data-role=list-search]", "")
    page.select_option("[data-role=list-state]", "exited")
    assert visible_names(page) == ["job-1"]
    page.select_option("[data-role=list-state]", "")
    page.click("button.sort[data-sort=name]")
    assert visible_names(page) == ["db-1", "job-1", "web-1"]
    assert page.get_attribute("th:has(button[data-sort=name])", "aria-sort") == "ascending"
    page.click("button.sort[data-sort=name]")
    assert visible_names(page) == ["web-1", "job-1", "db-1"]

    # Quick actions follow the row's state: Stop on a running row, then Start is offered instead.
    row = page.locator(f"#container-{made['web-1'].pk}")
    assert row.locator("button[data-quick=start]").is_disabled()
    row.locator("button[data-quick=stop]").click()
    page.wait_for_function("document.querySelector('[data-role=state-summary]').textContent === "
                           "'2 exited · 1 running'", timeout=60_000)
    assert row.locator("button[data-quick=start]").is_enabled() and row.locator("button[data-quick=stop]").is_disabled()
    assert Container.objects.get(pk=made["web-1"].pk).state == "exited"
    assert summary.inner_text() == "2 exited · 1 running"
    # Restart from its row: the container starts again (a later start time), still running.
    db = Container.objects.get(pk=made["db-1"].pk)
    page.locator(f"#container-{db.pk} button[data-quick=restart]").click()
    wait_for(lambda: Container.objects.get(pk=db.pk).started > db.started, what="db-1 to be restarted")
    assert Container.objects.get(pk=db.pk).state == "running"

    # Logs and the console are one click from each row; Teams is in the main navigation.
    assert row.locator("a", has_text="Console").get_attribute("href") == f"/containers/{made['web-1'].pk}/#console"
    assert page.locator("nav[aria-label=Main] a", has_text="Teams").get_attribute("href") == "/teams/"
    # The page of a container: its sections are one click away.
    row.locator("a", has_text="Logs").click()
    page.wait_for_url(f"**/containers/{made['web-1'].pk}/#logs-{made['web-1'].pk}")
    tabs = page.locator("[data-role=tabs] a").all_inner_texts()
    assert tabs == ["Overview", "Logs", "Console", "Stats", "Files", "Downloads", "Inspect", "Jobs"]
    page.click("[data-role=tabs] a:text-is('Inspect')")
    inspect = page.locator("[data-role=inspect]")
    assert inspect.is_visible() and '"name": "web-1"' in inspect.inner_text()
    assert inspect.evaluate("e => e.getBoundingClientRect().top < window.innerHeight")

    # A container that keeps failing under restart "always": each restart is marked in its log view.
    flappy, job = services.create_container(live_berth.user, host=live_berth.worker.host, image=busybox,
                                            name="flappy", spec={"command": "sh -c 'echo run; sleep 1; exit 3'",
                                                                 "restart_policy": "always"})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    page.goto(f"{live_berth.url}/containers/{flappy.pk}/")
    page.wait_for_selector("#live-status.on")
    marker = page.locator("[data-logs] [data-role=view] .log-marker").first
    marker.wait_for(timeout=90_000)
    assert marker.inner_text().startswith("— restarted (")
    services.container_action(live_berth.user, Container.objects.get(pk=flappy.pk), "kill", params={})
    ctx.close()
    assert problems == []
