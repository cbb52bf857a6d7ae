"""Issue 17's "Bugs found" on the containers pages, each reproduced in Debian's chromium against a live Berth
(real worker, real runtime) as a non-superuser: bulk actions, several form errors at once, a command that
does not exist, the command shown with its quoting, the log download beside its button, the banner and
Commit's link after later actions, no Download link on jobs that make no file."""

from __future__ import annotations

import shlex

import pytest

from containers import services
from containers.models import Container, Image, Job

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

# sh as PID 1 ignores SIGTERM unless it traps it: this one stops at once.
LOOP = "sh -c 'trap \"exit 0\" TERM; while :; do echo \"tick tock\"; sleep 0.2; done'"


def _busybox(live_berth) -> Image:
    return Image.objects.get(host=live_berth.worker.host, name="busybox", tag="latest", namespace="")


def _run(live_berth, wait_job, name: str) -> Container:
    container, job = services.create_container(live_berth.user, host=live_berth.worker.host,
                                               image=_busybox(live_berth), name=name, spec={"command": LOOP})
    assert wait_job(job, timeout=60).state == "succeeded", job.error
    return container


def state_is(page, row_id: int, state: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"(document.querySelector('#container-{row_id} [data-field=state]') || {{}}).textContent === '{state}'",
        timeout=timeout)


def test_bulk_actions_with_select_all_and_the_command_with_its_quoting(live_berth, browser, watch, problems, wait_job):
    one, two = _run(live_berth, wait_job, "one"), _run(live_berth, wait_job, "two")
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/")
    page.wait_for_selector("#live-status.on")
    page.check(f"input[name=ids][value='{one.pk}']")
    page.check(f"input[name=ids][value='{two.pk}']")
    # The buttons are named "action": the request must still go to the form's URL (it went to
    # /containers/[object RadioNodeList] and the server answered 404).
    page.click("#bulk-form button[value=stop]")
    status = page.locator("[data-role=bulk-status]")
    page.wait_for_function("document.querySelector('[data-role=bulk-status]').textContent.includes('queued')")
    assert status.inner_text() == "stop queued for 2 container(s)."
    state_is(page, one.pk, "exited")
    state_is(page, two.pk, "exited")
    assert {c.state for c in Container.objects.filter(pk__in=(one.pk, two.pk))} == {"exited"}

    # The command as it was given, quotes and all, so it can be copied back into a shell.
    page.goto(f"{live_berth.url}/containers/{one.pk}/")
    shown = page.locator("[data-field-static=command]").inner_text()
    assert shown == shlex.join(Container.objects.get(pk=one.pk).command)
    assert shlex.split(shown) == ["sh", "-c", 'trap "exit 0" TERM; while :; do echo "tick tock"; sleep 0.2; done']

    # Select all, then start, restart, stop and remove: each reaches every container on its host.
    def bulk(action: str) -> list[Job]:
        before = set(Job.objects.filter(kind=f"container.{action}").values_list("pk", flat=True))
        page.check("[data-role=select-all]")
        assert page.locator("input[name=ids]:checked").count() == 2
        page.click(f"#bulk-form button[value={action}]")
        page.wait_for_function(f"document.querySelector('[data-role=bulk-status]').textContent"
                               f".startsWith('{action} queued for 2 container(s).')")
        made = list(Job.objects.filter(kind=f"container.{action}").exclude(pk__in=before))
        assert sorted(int(j.target_id) for j in made) == sorted((one.pk, two.pk))
        assert all(wait_job(j, timeout=60).state == "succeeded" for j in made), [j.error for j in made]
        return made

    page.goto(live_berth.url + "/containers/")
    page.wait_for_selector("#live-status.on")
    bulk("start")
    state_is(page, one.pk, "running")
    state_is(page, two.pk, "running")
    started = {c.pk: c.started for c in Container.objects.filter(pk__in=(one.pk, two.pk))}
    bulk("restart")
    state_is(page, one.pk, "running")
    assert all(c.state == "running" and c.started > started[c.pk]
               for c in Container.objects.filter(pk__in=(one.pk, two.pk)))
    bulk("stop")
    state_is(page, one.pk, "exited")
    state_is(page, two.pk, "exited")
    page.once("dialog", lambda d: d.accept())  # "Remove 2 container(s)?"
    bulk("remove")
    page.wait_for_function(f"!document.querySelector('#container-{one.pk}') && "
                           f"!document.querySelector('#container-{two.pk}')", timeout=60_000)
    assert not Container.objects.filter(pk__in=(one.pk, two.pk)).exclude(state="removed").exists()
    page.goto(live_berth.url + "/containers/")
    assert page.locator(f"#container-{one.pk}, #container-{two.pk}").count() == 0
    ctx.close()
    assert problems == []


def test_several_errors_at_once_and_a_command_that_does_not_exist(live_berth, browser, watch, problems):
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/new/")
    page.wait_for_selector("#live-status.on")
    # Three bad limits: three messages, each at its field (only memory's was shown).
    jobs_before = Job.objects.count()
    page.fill("#id_memory", "lots")
    page.fill("#id_cpus", "-3")
    page.fill("#id_pids_limit", "abc")
    page.click("[data-role=submit]")
    for field, words in (("memory", "lots"), ("cpus", "-3"), ("pids_limit", "abc")):
        slot = page.locator(f"[data-error-for={field}]")
        slot.wait_for(state="visible")
        assert words in slot.inner_text()
    assert Job.objects.count() == jobs_before

    # A command the image does not have: the container is made but cannot start. One true message at the
    # Command field, with a link to the container, which stays (stopped, with its error).
    page.fill("#id_memory", "")
    page.fill("#id_cpus", "")
    page.fill("#id_pids_limit", "")
    page.fill("#id_name", "nocmd")
    page.fill("#id_command", "/no/such/program")
    page.click("[data-role=submit]")
    slot = page.locator("[data-error-for=command]")
    page.locator("[data-error-for=command] a[data-role=open-created]").wait_for(timeout=60_000)
    text = slot.inner_text()
    assert "/no/such/program" in text and "nocmd exists" in text
    assert "nothing was created" not in page.locator("[data-role=status]").inner_text()
    row = Container.objects.get(name="nocmd", owner=live_berth.user)
    assert row.state != "running" and "start failed" in row.status_message
    assert page.locator("a[data-role=open-created]").get_attribute("href").startswith(f"/containers/{row.pk}/")
    # Trying again does not trip over the name that is now taken: the name box was emptied.
    assert page.input_value("#id_name") == ""
    page.click("a[data-role=open-created]")
    page.wait_for_url(f"**/containers/{row.pk}/**")
    assert "start failed" in page.locator(".status-line").inner_text()
    ctx.close()
    assert problems == []


def test_banner_commit_link_log_download_and_job_rows(live_berth, browser, watch, problems, wait_job):
    box = _run(live_berth, wait_job, "boxy")
    create = Job.objects.get(kind="container.create", target_id=str(box.pk))
    ctx = browser.new_context(viewport={"width": 1366, "height": 800})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(f"{live_berth.url}/containers/{box.pk}/?job={create.pk}")
    page.wait_for_selector("#live-status.on")
    banner = page.locator("[data-role=job-banner] [data-role=job-text]")
    page.wait_for_function("document.querySelector('[data-role=job-banner] [data-role=job-text]')"
                           ".textContent.includes('done')")
    # A create job makes no file: its row has no Download link (one appeared and led to a 404).
    assert page.locator(f"#job-{create.pk} a[data-role=download]").count() == 0

    # Stop: the banner follows it (it kept saying "container.create done.").
    page.fill("form[data-action=stop] input[name=timeout]", "5")
    page.click("form[data-action=stop] button")
    page.wait_for_function("document.querySelector('[data-role=job-banner] [data-role=job-text]')"
                           ".textContent === 'Stop done.'", timeout=60_000)
    state_is(page, box.pk, "exited")
    # The countdown to SIGKILL ends when the container has stopped.
    try:
        page.wait_for_function("document.querySelector('[data-role=action-status]').textContent === "
                               "'Stopped (exited).'", timeout=30_000)
    except Exception:
        raise AssertionError(page.locator("[data-role=action-status]").inner_text() + repr(problems)) from None

    # Commit: when it is done, the banner links the new image.
    page.click("details.commit > summary")
    page.fill("form[data-action=commit] input[name=ref]", "snap:1")
    page.click("form[data-action=commit] button[type=submit]")
    link = page.locator("[data-role=job-banner] a[data-role=new-image]")
    link.wait_for(timeout=60_000)
    image = Image.objects.get(name="snap", tag="1", owner=live_berth.user)
    assert link.get_attribute("href") == f"/images/{image.pk}/"
    assert banner.inner_text().startswith("Commit done.")
    assert page.locator(f"#job-{create.pk} a[data-role=download]").count() == 0

    # "Download full log": its entry and link appear beside the button, in view (it was off screen).
    button = page.locator("form.logs-download button")
    button.scroll_into_view_if_needed()
    button.click()
    entry = page.locator("[data-role=log-file] a[data-role=download]")
    entry.wait_for(state="visible", timeout=60_000)
    assert entry.evaluate("a => { const r = a.getBoundingClientRect(); "
                          "return r.top >= 0 && r.bottom <= window.innerHeight; }")
    logs = Job.objects.get(kind="container.logs", target_id=str(box.pk))
    assert entry.get_attribute("href") == f"/jobs/{logs.pk}/download/"
    assert "tick tock" in page.request.get(live_berth.url + entry.get_attribute("href")).text()
    # Each download entry says what it is and when.
    item = page.locator(f"[data-role=files] li[data-job-id='{logs.pk}']")
    assert item.locator(".file-kind").inner_text() == "Full log"
    assert item.locator("time").inner_text().startswith(str(logs.created.year))
    # The committed image's page says where it came from, linking the container.
    page.goto(f"{live_berth.url}/images/{image.pk}/")
    origin = page.locator("[data-field=origin]")
    assert origin.inner_text().startswith("committed from container boxy by ")
    assert origin.locator("a").first.get_attribute("href") == f"/containers/{box.pk}/"
    ctx.close()
    assert problems == []
