"""The container page's Console, Stats and Files with a live Berth and Debian's chromium: `echo $((6*7))` typed
into the console shows 42, resizing the window changes `stty size`, the stats charts draw points, a file
uploaded through the file browser is `cat` in the console."""

from __future__ import annotations

import re

import pytest

from containers import services
from containers.models import Container

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(300)]


def _terminal_text(page) -> str:
    return page.locator("[data-role=terminal] .xterm-rows").inner_text()


def _type(page, text: str) -> None:
    page.locator("[data-role=terminal] .xterm-helper-textarea").focus()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def _stty(page, marker: str) -> tuple[int, int]:
    _type(page, f"echo {marker}-$(stty size | tr ' ' x)")
    pattern = re.compile(rf"{marker}-(\d+)x(\d+)")
    page.wait_for_function(f"document.querySelector('[data-role=terminal] .xterm-rows').innerText"
                           f".match(/{marker}-\\d+x\\d+/)", timeout=30_000)
    rows, cols = pattern.search(_terminal_text(page)).groups()
    return int(rows), int(cols)


def test_console_stats_and_files_in_the_browser(live_berth, browser, watch, problems, wait_for, tmp_path):
    container, job = services.create_container(live_berth.user, host=live_berth.worker.host, image="busybox:latest",
                                               name="tuned", command=["sleep", "1000"])
    wait_for(lambda: Container.objects.get(pk=container.pk).state == "running", 90, "the container to run")
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(f"{live_berth.url}/containers/{container.pk}/")
    page.click("[data-role=console-open]")
    page.wait_for_function("document.querySelector('[data-role=console-status]').textContent.includes('connected')",
                           timeout=60_000)
    _type(page, "echo $((6*7))")
    page.wait_for_function("document.querySelector('[data-role=terminal] .xterm-rows').innerText"
                           ".split('\\n').some(l => l.trim() === '42')", timeout=30_000)
    before = _stty(page, "one")
    page.set_viewport_size({"width": 800, "height": 700})
    wait_for(lambda: _stty(page, f"m{before[1]}") != before, 30, "stty size to follow the window")
    # stats: the sampler's points drawn as charts
    page.wait_for_function("Number(document.querySelector('[data-role=stats]').dataset.points || 0) >= 2",
                           timeout=60_000)
    assert page.locator("[data-role=stats] .uplot canvas").count() >= 5
    # files: upload into /tmp through the browser, then cat it in the console
    page.fill("[data-role=browser-go] input[name=path]", "/tmp")
    page.click("[data-role=browser-go] button")
    note = tmp_path / "note.txt"
    note.write_text("tuned-by-browser\n")
    page.set_input_files("[data-role=browser-upload] input[type=file]", str(note))
    page.click("[data-role=browser-upload] button")
    page.wait_for_function("document.querySelector('[data-role=browser-status]').textContent.startsWith('Uploaded')",
                           timeout=60_000)
    assert "note.txt" in page.locator("[data-role=browser-rows]").inner_text()
    _type(page, "cat /tmp/note.txt")
    page.wait_for_function("document.querySelector('[data-role=terminal] .xterm-rows').innerText"
                           ".split('\\n').some(l => l.trim() === 'tuned-by-browser')", timeout=30_000)
    # the host page's overview lists it with its figures, sortable
    page.goto(f"{live_berth.url}/hosts/")
    page.wait_for_selector(f"[data-host-stats] tr[data-container-id='{container.pk}']", timeout=30_000)
    page.click("[data-host-stats] [data-sort=memory]")
    assert page.locator("[data-host-stats]").first.get_attribute("data-sorted-by") == "memory:desc"
    assert problems == []
