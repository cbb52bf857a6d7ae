"""Teams managed in the dashboard, in Debian's chromium against a live Berth (issue 17: they were only in
/admin/, which the navigation did not link): a team admin reaches the team from the navigation, adds a member,
changes the member's role and removes the member; an unknown user and stepping down as the last admin are
refused with a message that says why, and nothing changes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from containers.models import Team, TeamMembership

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.root]


def test_a_team_admin_adds_reroles_and_removes_a_member(live_berth, browser, watch, problems):
    team = Team.objects.create(name="ops")
    TeamMembership.objects.create(team=team, user=live_berth.user, role="admin")
    bob = get_user_model().objects.create_user("bob")
    me = live_berth.user
    page = watch(browser.new_page(viewport={"width": 1366, "height": 900}))
    live_berth.login(page)
    page.click("nav[aria-label=Main] a:text-is('Teams')")
    with page.expect_navigation():
        page.click("main a:text-is('ops')")
    assert page.url.endswith(f"/teams/{team.pk}/")
    messages = page.locator("ul.messages")

    def add(username: str, role: str) -> None:
        page.fill("#id_member_username", username)
        page.select_option("#id_member_role", role)
        with page.expect_navigation():
            page.click("#member-add-form button[type=submit]")

    add("bob", "operator")
    assert messages.inner_text() == "bob added to ops as operator."
    assert page.locator(f"#member-{bob.pk} [data-field=role]").inner_text() == "operator"
    add("nobody", "viewer")
    assert "nobody" in messages.inner_text() and page.locator("#members-table tbody tr").count() == 2

    def set_role(user, role: str, button: str = "Save role") -> None:
        row = page.locator(f"#member-{user.pk}")
        row.locator("select[name=role]").select_option(role)
        with page.expect_navigation():
            row.get_by_role("button", name=button).click()

    set_role(bob, "viewer")
    assert page.locator(f"#member-{bob.pk} [data-field=role]").inner_text() == "viewer"
    set_role(me, "viewer")  # the only admin may not step down
    assert "at least one admin" in messages.inner_text()
    assert page.locator(f"#member-{me.pk} [data-field=role]").inner_text() == "admin"
    set_role(bob, "viewer", button="Remove")
    assert page.locator(f"#member-{bob.pk}").count() == 0
    assert set(TeamMembership.objects.filter(team=team).values_list("user__username", "role")) == {("dash", "admin")}
    assert problems == []
