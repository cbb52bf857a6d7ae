"""The dashboard by keyboard, for screen readers and on a phone, in Debian's chromium against a live Berth:
forms default to a host that has images and keep the image list and messages in step with the chosen host;
the create form works with the keyboard alone (skip link, tab order, Enter, focus on the first error); help
texts are wired to their inputs; axe-core (npm) finds no serious or critical violation on any page; at 375 px
the containers list shows each row's host and the audit table its Result; a job of yours that finishes while
you are on another page is announced there."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from containers import services
from containers.api.auth import create_token
from containers.models import Container, Host, Image, Job, Team, TeamMembership, Volume

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


# aria-describedby/-labelledby/-controls ids that name no element (help texts were id_X_help, not id_X_helptext).
DANGLING_IDREFS = """[...document.querySelectorAll('[aria-describedby], [aria-labelledby], [aria-controls]')]
    .flatMap(e => ['aria-describedby', 'aria-labelledby', 'aria-controls'].flatMap(a =>
        (e.getAttribute(a) || '').split(/\\s+/).filter(i => i && !document.getElementById(i))
        .map(i => `${e.tagName.toLowerCase()}#${e.id} ${a}=${i}`)))"""

# Words split across two lines in the given cells (a word broken by word-break or overflow-wrap has two boxes).
BROKEN_WORDS = """cells => cells.flatMap(td => { const out = []; const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) { for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
        if (new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1) out.push(m[0]); } }
    return out; })"""

# Every shown date (not a relative "… ago"): its text and its datetime attribute.
SHOWN_DATES = """[...document.querySelectorAll('time[datetime]')].filter(t => t.getAttribute('datetime')
    && !t.textContent.trim().endsWith('ago')).map(t => [t.getAttribute('datetime'), t.textContent.trim()])"""


def axe_problems(page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now."""
    assert AXE.exists(), f"{AXE} is missing: run `make npm` (package.json lists axe-core)"
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                          ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                          ".map(v => `${v.id}: ${v.help} -> ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)")
    found += page.evaluate(DANGLING_IDREFS)
    return [f"{page.url}: {v}" for v in found]


def tab_to(page, element_id: str, most: int = 40) -> None:
    """Press Tab until the element with `element_id` has the focus."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} never got the focus by Tab")


def test_second_host_defaults_keyboard_and_notifications(live_berth, browser, watch, problems, wait_job):
    # A second, empty host whose name sorts first (the forms used to preselect it).
    empty = Host.objects.create(name="aaa-empty", last_heartbeat=timezone.now() + timezone.timedelta(hours=1))
    node = live_berth.worker.host
    busybox = Image.objects.get(host=node, name="busybox", tag="latest", namespace="")
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/new/")
    page.wait_for_selector("#live-status.on")
    assert page.input_value("#id_host") == str(node.pk)
    assert page.input_value("#id_image") == str(busybox.pk)
    image_hint = page.locator("[data-error-for=image]")
    assert image_hint.is_hidden()
    # The empty host: no other host's image stays chosen, and the message names the host.
    page.select_option("#id_host", str(empty.pk))
    assert page.input_value("#id_image") == ""
    assert image_hint.is_visible() and "aaa-empty" in image_hint.inner_text()
    page.click("[data-role=submit]")
    page.wait_for_function("document.querySelector('[data-error-for=image]').textContent.includes('pick an image')")
    # Back to the host with images: its image is chosen again and the message goes.
    page.select_option("#id_host", str(node.pk))
    assert page.input_value("#id_image") == str(busybox.pk) and image_hint.is_hidden()
    page.goto(live_berth.url + "/images/")
    assert page.input_value("#id_host") == str(node.pk)

    # Keyboard only: the skip link comes first and lands in the page; then the fields, Enter to create.
    page.goto(live_berth.url + "/containers/new/")
    page.wait_for_selector("#live-status.on")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    tab_to(page, "id_name")
    page.keyboard.type("typed")
    tab_to(page, "id_command")
    page.keyboard.type("sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.2; done'")
    tab_to(page, "id_memory")
    page.keyboard.type("lots")
    tab_to(page, "id_cpus")  # Enter from another field: the focus must come back to the refused one
    page.keyboard.press("Enter")
    # The refusal (not just any answer: the button is disabled until it comes) takes the focus to its field.
    page.wait_for_function("!document.querySelector('[data-error-for=memory]').hidden")
    assert page.evaluate("document.activeElement.id") == "id_memory"
    assert page.is_enabled("[data-role=submit]")
    page.keyboard.press("Control+a")
    page.keyboard.type("64m")
    page.keyboard.press("Enter")
    page.wait_for_url("**/containers/*/?job=*", timeout=60_000)
    typed = Container.objects.get(name="typed", owner=live_berth.user)
    assert typed.config["memory"] == 64 << 20
    # Help texts are announced: aria-describedby names an element that exists.
    page.goto(live_berth.url + "/containers/new/")
    described = page.get_attribute("#id_name", "aria-describedby")
    assert described and all(page.locator(f"#{i}").count() == 1 for i in described.split())

    # A job of mine that finishes while I am on another page: a note says so, with a link.
    create = Job.objects.get(kind="container.create", target_id=str(typed.pk))
    assert wait_job(create, timeout=60).state == "succeeded"
    page.goto(live_berth.url + "/hosts/")
    page.wait_for_selector("#live-status.on")
    stop = services.container_action(live_berth.user, Container.objects.get(pk=typed.pk), "stop",
                                     params={"timeout": 5})
    note = page.locator(f"[data-notice-job='{stop.pk}']")
    note.wait_for(timeout=60_000)
    assert note.inner_text().startswith(f"container.stop #{stop.pk} done")
    assert note.locator("a").get_attribute("href") == f"/containers/{typed.pk}/"
    ctx.close()
    assert problems == []


# The elements that stick out past the viewport's right edge (to name them when a page does not fit).
WIDER_THAN_VIEW = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right
    > window.innerWidth + 0.5).slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)"""


def test_every_page_passes_axe_and_fits_a_phone(live_berth, browser, watch, problems, wait_job):
    container, job = services.create_container(
        live_berth.user, host=live_berth.worker.host, name="seen",
        image=Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace=""),
        spec={"command": "sh -c 'echo hello; sleep 600'", "mounts": ["data:/data"]})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    image = container.image
    team = Team.objects.create(name="ops")
    TeamMembership.objects.create(team=team, user=live_berth.user, role="admin")
    create_token(live_berth.user, "ci")
    volume = Volume.objects.get(name="data", owner=live_berth.user)
    pages = ["/containers/", "/containers/new/", f"/containers/{container.pk}/", "/images/", f"/images/{image.pk}/",
             "/images/pull/", "/images/build/", "/registries/", "/volumes/", "/networks/", "/jobs/",
             f"/jobs/{job.pk}/", "/hosts/", "/audit/", "/tokens/", "/teams/", f"/teams/{team.pk}/"]
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    found: list[str] = []
    page.goto(live_berth.url + "/login/")
    found += axe_problems(page)
    live_berth.login(page)
    for path in pages:
        page.goto(live_berth.url + path)
        page.wait_for_selector("#live-status.on")
        found += axe_problems(page)
    ctx.close()
    assert found == []

    # A phone in Tokyo: times are shown in its time zone, in one format.
    phone = browser.new_context(viewport={"width": 375, "height": 740}, timezone_id="Asia/Tokyo")
    page = watch(phone.new_page())
    live_berth.login(page)
    dates: list[str] = []
    for path in pages:
        page.goto(live_berth.url + path)
        page.wait_for_selector("#live-status.on")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, page.evaluate(WIDER_THAN_VIEW))
        # Every date in one format, in the phone's time zone (volumes and tokens showed the server's, to the minute).
        for stamp, shown in page.evaluate(SHOWN_DATES):
            tokyo = datetime.fromisoformat(stamp).astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
            assert shown == tokyo, (path, stamp, shown)
            dates.append(path)
    assert {"/volumes/", "/tokens/", "/audit/", f"/containers/{container.pk}/"} <= set(dates), dates
    # The Volumes page says what uses each volume.
    page.goto(live_berth.url + "/volumes/")
    used = page.locator(f"#volume-{volume.pk} a[href='/containers/{container.pk}/']")
    assert used.inner_text() == "seen"
    # The list tells rows apart by host; the audit table keeps its Result column in view.
    page.goto(live_berth.url + "/containers/")
    host_line = page.locator(f"#container-{container.pk} .phone-only")
    assert host_line.is_visible() and host_line.inner_text() == f"on {live_berth.worker.host.name}"
    page.goto(live_berth.url + "/jobs/")
    page.wait_for_selector("#live-status.on")
    tokyo = job.created.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
    assert page.locator(f"#job-{job.pk} time[data-local]").inner_text() == tokyo
    page.goto(f"{live_berth.url}/containers/{container.pk}/")
    page.wait_for_selector("#live-status.on")
    dates = page.eval_on_selector_all("time[data-local]", "ts => ts.map(t => t.textContent)")
    assert dates and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|—", d) for d in dates), dates
    # Job progress bars are whole on a phone (they were clipped).
    bars = page.eval_on_selector_all("#jobs progress", "ps => ps.map(p => { const r = p.getBoundingClientRect(); "
                                     "const c = p.closest('td').getBoundingClientRect(); "
                                     "return r.width > 40 && r.right <= c.right + 1 && r.right <= window.innerWidth; })")
    assert bars and all(bars), bars
    page.goto(live_berth.url + "/audit/")
    result = page.locator("#audit-table tbody tr").first.locator("td").last
    assert result.evaluate("td => td.getBoundingClientRect().right <= window.innerWidth")
    # Whole words only in the audit table (it broke them mid-word).
    assert page.eval_on_selector_all("#audit-table tbody td", BROKEN_WORDS) == []
    phone.close()
    assert problems == []
