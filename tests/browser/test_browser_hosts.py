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
