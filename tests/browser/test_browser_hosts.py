"""The Hosts page in Debian's chromium against a live Berth (issue 18): an admin makes a join token (shown once,
gone after a reload), revokes it, labels and cordons the host; the create form then shows the refusal at the
host field."""

from __future__ import annotations

import pytest

from containers.models import Host, JoinToken

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]


def test_an_admin_manages_join_tokens_labels_and_cordon_on_the_hosts_page(live_berth, browser, watch, problems):
    # mutant: the Hosts template drops the {% if new_token %} notice (the token is never shown)
    user = live_berth.user
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    page = watch(browser.new_page(viewport={"width": 1366, "height": 900}))
    live_berth.login(page)
    page.goto(live_berth.url + "/hosts/")
    page.fill("#jt-name", "rack-2")
    page.fill("#jt-expires", "24")
    with page.expect_navigation():
        page.click("#join-token-form button[type=submit]")
    token = page.locator("#new-join-token [data-token]").inner_text().strip()
    row = JoinToken.objects.get(name="rack-2")
    assert token.startswith(row.prefix) and "make agent" in page.locator("#new-join-token").inner_text()
    page.goto(live_berth.url + "/hosts/")
    assert page.locator("#new-join-token").count() == 0 and token not in page.content()
    with page.expect_navigation():
        page.locator(f'tr[data-join-token-id="{row.pk}"] button', has_text="Revoke").click()
    assert "revoked" in page.locator(f'tr[data-join-token-id="{row.pk}"]').inner_text()

    host = live_berth.worker.host
    card = page.locator(f"#host-{host.pk}")
    card.locator(f"#labels-{host.pk}").fill("ssd,zone=a")
    with page.expect_navigation():
        card.get_by_role("button", name="Save labels").click()
    assert "zone=a" in page.locator(f'#host-{host.pk} [data-field="labels"]').inner_text()
    with page.expect_navigation():
        page.locator(f"#host-{host.pk}").get_by_role("button", name="Cordon").click()
    assert Host.objects.get(pk=host.pk).cordoned
    assert page.locator(f'#host-{host.pk} [data-field="cordon"]').is_visible()

    page.goto(live_berth.url + "/containers/new/")
    page.fill("#id_name", "late")
    page.click("#create-form button[type=submit]")
    error = page.locator('[data-field-name="host"] .field-error')
    error.wait_for(state="visible")
    assert "cordoned" in error.inner_text()
    page.goto(live_berth.url + "/hosts/")
    with page.expect_navigation():
        page.locator(f"#host-{host.pk}").get_by_role("button", name="Uncordon").click()
    assert not Host.objects.get(pk=host.pk).cordoned
    assert problems == []


def test_an_admin_drains_a_host_and_moves_its_containers_after_confirming(live_berth, browser, watch, problems,
                                                                          berth_worker, wait_job, wait_for):
    # mutant: static/js/hosts.js asks nothing (`if (question && !window.confirm(question))` -> `if (false)`): no
    # dialog, and the dismissed click drains
    from pathlib import Path

    from containers import services
    from containers.models import Container, Job
    from tests.support import clean_state_root

    user = live_berth.user
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    source = live_berth.worker.host
    spare = berth_worker("browser-spare")  # no image: the move carries it
    try:
        row, job = services.create_container(user, host=source, image="busybox:latest", name="mover",
                                             command=["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"])
        assert wait_job(job).state == Job.State.SUCCEEDED, job.error
        page = watch(browser.new_page(viewport={"width": 1366, "height": 900}))
        live_berth.login(page)
        page.goto(live_berth.url + "/hosts/")
        button = page.locator(f"#host-{source.pk}").get_by_role("button", name="Drain and move containers")
        asked: list[str] = []

        def answer(accept: bool):
            def handle(dialog) -> None:
                asked.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()
            return handle

        page.once("dialog", answer(False))
        button.click()
        assert asked == [f"Drain {source.name} and move every container on it to the least loaded online, "
                         "uncordoned hosts? Running containers are stopped, moved with their files and volumes, and "
                         "started again there."]
        page.once("dialog", answer(True))
        with page.expect_navigation():
            button.click()
        assert len(asked) == 2
        move = Job.objects.get(kind="container.move")  # one: the dismissed click sent nothing
        said = page.locator("main .messages").inner_text()
        assert f"Moving: mover to browser-spare (job #{move.pk})" in said, said
        assert wait_job(move, timeout=180).state == Job.State.SUCCEEDED, move.error
        moved = Container.objects.get(pk=move.params["to_container"])
        wait_for(lambda: Container.objects.get(pk=moved.pk).state == "running", what="mover running on the spare")
        assert moved.host.name == "browser-spare" and not Container.objects.filter(pk=row.pk).exists()
        page.goto(live_berth.url + "/hosts/")
        assert page.locator(f'#host-{source.pk} [data-field="cordon"]').inner_text() == "draining"
        assert "mover" in page.locator(f"#host-{spare.host.pk} .host-containers").inner_text()
        assert problems == []
    finally:
        spare.stop(timeout=10)
        clean_state_root(Path(spare.state_root))
