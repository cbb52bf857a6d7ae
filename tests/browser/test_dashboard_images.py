"""Issue 17's image bugs in Debian's chromium against a live Berth, as a non-superuser team admin: an import over
an existing name:tag is refused (the team's image stays as it was), a `docker save` archive given to Import is
refused with a word about Load, Load works from the dashboard and refuses a tag it would replace, the history
names the uploaded file (never the server's staging path), the image page says where the image came from and
lists the import job, Share updates the facts without a reload, download entries say what and when."""

from __future__ import annotations

import pytest

from containers.models import Image, Job, Team, TeamMembership
from tests.support import busybox_tarball

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]


def upload(page, form: str, name: str, data: bytes, ref: str | None = None, team: str | None = None) -> None:
    prefix = "#id_load_" if form == "#load-form" else "#id_"
    page.set_input_files(prefix + "file", files=[{"name": name, "mimeType": "application/x-tar", "buffer": data}])
    if ref is not None:
        page.fill(prefix + "ref", ref)
    page.select_option(prefix + "team", label=team or "— none (only me) —")
    page.click(f"{form} [data-role=submit]")


def test_import_refusals_load_origin_and_share(live_berth, browser, watch, problems, tmp_path):
    team = Team.objects.create(name="ops")
    TeamMembership.objects.create(team=team, user=live_berth.user, role="admin")
    rootfs = busybox_tarball(tmp_path)
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/images/")
    page.wait_for_selector("#live-status.on")

    # The team's image, then the same name:tag again for the team: refused at the name, the image untouched.
    upload(page, "#import-form", "busybox.tar", rootfs, ref="shared:1", team="ops")
    page.locator("#images td:first-child a:text-is('shared')").wait_for(timeout=90_000)
    before = Image.objects.get(name="shared", tag="1", team=team)
    upload(page, "#import-form", "other.tar", rootfs, ref="shared:1", team="ops")
    ref_error = page.locator("#import-form [data-error-for=ref]")
    ref_error.wait_for(state="visible", timeout=30_000)
    assert "already exists" in ref_error.inner_text()
    after = Image.objects.get(pk=before.pk)
    assert (after.digest, after.layers, after.team_id) == (before.digest, before.layers, team.pk)
    assert Job.objects.filter(kind="image.import").count() == 1

    # My own image (no team): its page says where it came from, shows the import job and a clean history.
    upload(page, "#import-form", "busybox.tar", rootfs, ref="mybox:1")
    page.locator("#images td:first-child a:text-is('mybox')").wait_for(timeout=90_000)
    mine = Image.objects.get(name="mybox", tag="1", owner=live_berth.user)
    imported = Job.objects.get(kind="image.import", params__ref="mybox:1")
    page.goto(f"{live_berth.url}/images/{mine.pk}/")
    page.wait_for_selector("#live-status.on")
    history = page.locator("table.history").inner_text()
    assert "/uploads/" not in history and ".upload" not in history
    assert "berth import busybox.tar" in history
    assert "imported from busybox.tar" in page.locator("[data-field=origin]").inner_text()
    assert page.locator(f"#job-{imported.pk}").count() == 1

    # Share with the team: the facts say so at once (they said "Team —" until a reload).
    page.select_option("form[data-action=share] select[name=team]", label="ops")
    page.click("form[data-action=share] button[type=submit]")
    page.wait_for_function("document.querySelector('.facts [data-field=team]').textContent === 'ops'")

    # Save it: the download entry says which format and when.
    page.select_option("form[data-action=save] select[name=format]", "docker-archive")
    page.click("form[data-action=save] button[type=submit]")
    entry = page.locator("[data-role=files] li").first
    entry.locator("a[data-role=download]").wait_for(state="visible", timeout=60_000)
    assert "(docker-archive)" in entry.inner_text()
    assert entry.locator("time").inner_text().startswith(str(imported.created.year))
    saved = Job.objects.get(kind="image.save", target_id=str(mine.pk))
    archive = page.request.get(f"{live_berth.url}/jobs/{saved.pk}/download/").body()

    # That archive given to Import: refused at the file, pointing to Load; nothing made.
    page.goto(live_berth.url + "/images/")
    page.wait_for_selector("#live-status.on")
    jobs_before = Job.objects.count()
    upload(page, "#import-form", "mybox-saved.tar", archive, ref="fromsave:1")
    file_error = page.locator("#import-form [data-error-for=file]")
    file_error.wait_for(state="visible", timeout=30_000)
    assert "docker-archive" in file_error.inner_text() and "Load" in file_error.inner_text()
    assert Job.objects.count() == jobs_before and not Image.objects.filter(name="fromsave").exists()

    # Load, into my own name space where mybox:1 exists: refused, never replaced.
    upload(page, "#load-form", "mybox-saved.tar", archive)
    load_phase = page.locator("#load-form [data-role=phase]")
    page.wait_for_function("document.querySelector('#load-form [data-role=phase]').textContent.startsWith("
                           "'Load failed')", timeout=90_000)
    assert "already exists" in load_phase.inner_text()
    assert Image.objects.get(pk=mine.pk).digest == mine.digest
    # Load for the team: its images appear in the list, under the archive's own name:tag.
    upload(page, "#load-form", "mybox-saved.tar", archive, team="ops")
    page.wait_for_function("document.querySelector('#load-form [data-role=phase]').textContent === 'Load done.'",
                           timeout=90_000)
    loaded = Image.objects.exclude(pk=mine.pk).get(name="mybox", tag="1")
    assert loaded.team_id == team.pk and loaded.digest == mine.digest
    page.locator(f"#image-{loaded.pk}").wait_for()
    page.goto(f"{live_berth.url}/images/{loaded.pk}/")
    assert page.locator("[data-field=origin]").inner_text().startswith("loaded from mybox-saved.tar by ")
    ctx.close()
    assert problems == []
