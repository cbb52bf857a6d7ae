"""A host with a thousand containers (issue 16): the containers page is paged, the hosts page names the first
ones and counts the rest, and neither makes a query per container (bench/scale.py times them on the real stack)."""

from __future__ import annotations

import re

import pytest

from containers.models import Container
from containers.selectors.pages import CONTAINERS_PER_PAGE, HOST_CONTAINERS_SHOWN
from tests.webapp.test_dashboard_pages import dash  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
ROW = re.compile(r'<tr id="container-(\d+)"')


def test_a_thousand_containers_are_paged_and_counted(dash, django_assert_max_num_queries):  # noqa: F811
    Container.objects.bulk_create([
        Container(name=f"idle-{i:04d}", host=dash.host, image=dash.app, image_ref="app:1", owner=dash.users["owner"],
                  team=dash.team, state="running", command=["sleep"]) for i in range(1000)])
    viewer = dash.client("viewer")  # sees the team's 1,001 (web included), not the other team's hidden-box
    with django_assert_max_num_queries(12):
        first = viewer.get("/containers/").content.decode()
    assert len(ROW.findall(first)) == CONTAINERS_PER_PAGE
    assert "page 1 of 11 (1001 containers)" in first and 'href="?page=2"' in first
    seen = set()
    for n in range(1, 12):
        seen |= set(ROW.findall(viewer.get(f"/containers/?page={n}").content.decode()))
    assert len(seen) == 1001 and str(dash.secret.pk) not in seen  # every one once, on some page
    with django_assert_max_num_queries(12):
        hosts = viewer.get("/hosts/").content.decode()
    assert hosts.count("<li data-container-id=") == HOST_CONTAINERS_SHOWN
    assert f"{HOST_CONTAINERS_SHOWN} of 1001 shown" in hosts and "hidden-box" not in hosts
