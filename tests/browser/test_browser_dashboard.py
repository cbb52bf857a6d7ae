"""The dashboard in Debian's chromium against a live Berth: create and start a busybox container that
prints a line every 100 ms, see the lines arrive live, stop it and see "exited" without a reload;
bad input shows its message next to the field; upload an image tarball and watch the bar reach 100 %;
nothing wider than a 375 px phone screen; no console errors anywhere."""

from __future__ import annotations

import io
import tarfile

import pytest

from containers.models import Container, Image, Job
from tests.support import busybox_tarball

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]

LOOP = "sh -c 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done'"


def no_overflow(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def test_create_watch_logs_stop_and_refusals(live_berth, browser, watch, problems):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/containers/new/")
    page.wait_for_selector("#live-status.on")
    page.fill("#id_name", "ticker")
    page.fill("#id_command", LOOP)
    page.fill("#id_memory", "64m")
    page.click("[data-role=submit]")
    page.wait_for_url("**/containers/*/?job=*", timeout=60_000)
    row = Container.objects.get(name="ticker")
    assert row.owner == live_berth.user and row.config["memory"] == 64 << 20
    # Lines arrive live in the logs panel (more and more of them, without reloading).
    page.evaluate("window.__same_page = true")
    page.wait_for_function("document.querySelectorAll('[data-role=view] .ln').length >= 5", timeout=60_000)
    texts = page.locator("[data-role=view] .ln .tx").all_inner_texts()
    assert texts[:3] == ["line 0", "line 1", "line 2"]
    page.wait_for_function(f"document.querySelectorAll('[data-role=view] .ln').length >= {len(texts) + 5}",
                           timeout=30_000)
    badge = page.locator(".container-page h1 [data-field=state]")
    assert badge.inner_text() == "running"
    # Stop with a 1 s timeout (sh as PID 1 ignores SIGTERM: SIGKILL follows) -> "exited", no reload.
    page.fill("form[data-action=stop] input[name=timeout]", "1")
    page.click("form[data-action=stop] button")
    page.wait_for_function("document.querySelector('.container-page h1 [data-field=state]').textContent === 'exited'",
                           timeout=60_000)
    assert page.evaluate("window.__same_page") is True
    assert not page.locator("[data-role=exit]").is_hidden()
    row.refresh_from_db()
    assert row.state == "exited" and row.exit_code is not None
    # The stop job shows in the history of this container, finished.
    stop = Job.objects.get(kind="container.stop", target_id=str(row.pk))
    page.locator(f"#job-{stop.pk} [data-field=state]:text('succeeded')").wait_for(timeout=30_000)
    create_job = Job.objects.get(kind="container.create", target_id=str(row.pk))
    assert page.locator(f"#job-{create_job.pk} [data-field=state]").inner_text() == "succeeded"

    # Export and the full log: each is a job; its download link appears in place when the file is ready.
    page.click("form[data-action=export] button")
    page.click("form.logs-download button")
    links = page.locator("[data-role=files] a[data-role=download]")
    page.wait_for_function("[...document.querySelectorAll('[data-role=files] a[data-role=download]')]"
                           ".filter(a => !a.hidden).length === 2", timeout=60_000)
    assert page.evaluate("window.__same_page") is True
    by_kind = {j.kind: j for j in Job.objects.filter(kind__in=("container.export", "container.logs"))}
    export = page.request.get(f"{live_berth.url}/jobs/{by_kind['container.export'].pk}/download/")
    assert export.ok and export.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(export.body())) as tar:
        assert "bin/busybox" in [n.lstrip("./") for n in tar.getnames()]
    log = page.request.get(f"{live_berth.url}/jobs/{by_kind['container.logs'].pk}/download/")
    assert log.ok and log.text().startswith("line 0\nline 1\n")
    assert links.count() == 2

    # Bad input: the name is taken on this host; memory of 1 byte. Messages next to the fields,
    # input kept, nothing made.
    jobs_before, containers_before = Job.objects.count(), Container.objects.count()
    page.goto(live_berth.url + "/containers/new/")
    page.fill("#id_name", "ticker")
    page.fill("#id_command", "echo hi")
    page.click("[data-role=submit]")
    name_error = page.locator("[data-error-for=name]")
    name_error.wait_for(state="visible")
    assert "already in use" in name_error.inner_text()
    assert page.input_value("#id_command") == "echo hi"
    page.fill("#id_name", "tiny")
    page.fill("#id_memory", "1")
    page.click("[data-role=submit]")
    memory_error = page.locator("[data-error-for=memory]")
    memory_error.wait_for(state="visible")
    assert "below the minimum" in memory_error.inner_text() and name_error.is_hidden()
    assert (Job.objects.count(), Container.objects.count()) == (jobs_before, containers_before)
    # A refusal only the host can make (the user is not in the image's /etc/passwd): the create job
    # fails, the row is gone, and the form still holds the input with the message at the user field.
    page.fill("#id_name", "who")
    page.fill("#id_memory", "")
    page.click("details.more > summary")
    page.fill("#id_user", "nosuchuser")
    page.click("[data-role=submit]")
    user_error = page.locator("[data-error-for=user]")
    user_error.wait_for(state="visible", timeout=60_000)
    assert "nosuchuser" in user_error.inner_text() and "/etc/passwd" in user_error.inner_text()
    assert page.input_value("#id_name") == "who" and page.input_value("#id_command") == "echo hi"
    assert not Container.objects.filter(name="who").exists()
    assert Job.objects.get(kind="container.create", params__name="who").state == "failed"

    # Remove it from the detail page (admin action of the owner): the list no longer has it.
    page.goto(f"{live_berth.url}/containers/{row.pk}/")
    page.once("dialog", lambda d: d.accept())
    page.click("form[data-action=remove] button")
    page.locator("[data-role=gone]").wait_for(state="visible", timeout=60_000)
    assert not Container.objects.filter(pk=row.pk).exists()
    ctx.close()
    assert problems == []


def test_upload_progress_bad_upload_and_phone_width(live_berth, browser, watch, problems, tmp_path):
    data = busybox_tarball(tmp_path)
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = watch(ctx.new_page())
    live_berth.login(page)
    page.goto(live_berth.url + "/images/")
    page.wait_for_selector("#live-status.on")
    # Not a tarball: the message is next to the file field and nothing is made.
    jobs_before = Job.objects.count()
    page.set_input_files("#id_file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                              "buffer": b"just some text, not an archive\n" * 40}])
    page.fill("#id_ref", "notes:1")
    page.click("#import-form [data-role=submit]")
    file_error = page.locator("#import-form [data-error-for=file]")
    file_error.wait_for(state="visible")
    assert "not a tar archive" in file_error.inner_text()
    assert Job.objects.count() == jobs_before and not Image.objects.filter(name="notes").exists()
    # A real busybox rootfs tarball: the bar goes through upload and import to 100 %, the row appears.
    page.set_input_files("#id_file", files=[{"name": "busybox.tar", "mimeType": "application/x-tar",
                                              "buffer": data}])
    page.fill("#id_ref", "mybox:1")
    page.click("#import-form [data-role=submit]")
    page.wait_for_function("document.getElementById('import-progress').value === 100", timeout=90_000)
    assert page.locator("#import-form [data-role=percent]").inner_text() == "100 %"
    page.locator("#images tr", has_text="mybox").wait_for(timeout=30_000)
    assert file_error.is_hidden()
    image = Image.objects.get(name="mybox", tag="1", host=live_berth.worker.host)
    assert image.owner == live_berth.user and image.size > 0
    # The same root filesystem gzip- and zstd-compressed: the same layer (digest of its content) under other tags.
    import gzip

    import zstandard

    for tag, name, packed in (("gz", "busybox.tar.gz", gzip.compress(data)),
                              ("zst", "busybox.tar.zst", zstandard.ZstdCompressor().compress(data))):
        page.set_input_files("#id_file", files=[{"name": name, "mimeType": "application/octet-stream",
                                                  "buffer": packed}])
        page.fill("#id_ref", f"mybox:{tag}")
        page.click("#import-form [data-role=submit]")
        page.locator(f"#images tr:has(span.tag:text-is('{tag}'))", has_text="mybox").wait_for(timeout=60_000)
        same = Image.objects.get(name="mybox", tag=tag, host=live_berth.worker.host)
        assert same.layers == image.layers and same.owner == live_berth.user, (tag, same.layers, image.layers)
    # Its page: history from the import; save it and download the archive when the job is done.
    page.click("#images tr:has-text('mybox') a")
    page.wait_for_url(f"**/images/{image.pk}/")
    assert page.locator("table.history tbody tr").count() >= 1
    page.click("form[data-action=save] button")
    page.locator("[data-role=files] a[data-role=download]").wait_for(state="visible", timeout=60_000)
    saved = Job.objects.get(kind="image.save", target_id=str(image.pk))
    archive = page.request.get(f"{live_berth.url}/jobs/{saved.pk}/download/")
    assert archive.ok
    with tarfile.open(fileobj=io.BytesIO(archive.body())) as tar:
        assert "manifest.json" in tar.getnames()  # docker-archive
    ctx.close()

    # Phone width: no page is wider than the screen.
    phone = browser.new_context(viewport={"width": 375, "height": 740})
    page = watch(phone.new_page())
    live_berth.login(page)
    for path in ("/containers/", "/containers/new/", "/images/", f"/images/{image.pk}/", "/jobs/", "/hosts/"):
        page.goto(live_berth.url + path)
        page.wait_for_selector("#live-status.on")
        no_overflow(page)
    phone.close()
    assert problems == []
