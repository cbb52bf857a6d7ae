"""The container page's host picker (issue 18): move and copy queue one job on the container's host, the
target's row waits there; a viewer sees no picker and is refused; the container's own host is refused at the
host field and nothing is made."""

from __future__ import annotations

import pytest

import tests.webapp.test_dashboard_pages as pages
from containers.models import Container, Job

dash = pages.dash  # two hosts, a team with one user per role, their objects

pytestmark = pytest.mark.django_db


def test_the_picker_moves_and_copies_through_one_job_on_the_source_host(dash):
    # mutant: views_move.container_send passes copy=not copy (a move button copies)
    owner = dash.client("operator")
    page = owner.get(f"/containers/{dash.web.pk}/").content.decode()
    assert 'name="host"' in page and '<option value="dash-b">' in page and '<option value="dash-a">' not in page
    r = owner.post(f"/containers/{dash.web.pk}/send/", {"host": "dash-b", "how": "move"})
    job = Job.objects.get(kind="container.move")
    assert r.status_code == 302 and r["Location"] == f"/jobs/{job.pk}/"
    made = Container.objects.get(pk=job.params["to_container"])
    assert (job.host_id, job.target_id, job.params["copy"]) == (dash.host.pk, str(dash.web.pk), False)
    assert (made.host_id, made.name, made.owner_id, made.team_id) == (dash.host_b.pk, "web", dash.web.owner_id,
                                                                     dash.team.pk)
    assert made.config["memory"] == 64 << 20  # the spec travels
    # a second move or copy while the first runs is refused: one at a time
    again = owner.post(f"/containers/{dash.web.pk}/send/", {"host": "dash-b", "how": "copy"}, follow=True)
    assert "being moved or copied already" in again.content.decode()
    assert Job.objects.filter(kind="container.copy").count() == 0


def test_a_viewer_gets_no_picker_and_the_own_host_is_refused(dash):
    # mutant: services/move._target_host drops the "same host" check
    viewer = dash.client("viewer")
    assert 'name="how"' not in viewer.get(f"/containers/{dash.web.pk}/").content.decode()
    json = {"HTTP_ACCEPT": "application/json"}
    no = viewer.post(f"/containers/{dash.web.pk}/send/", {"host": "dash-b", "how": "copy"}, **json).json()
    assert (no["ok"], no["status"], no["code"]) == (False, 403, "forbidden")  # the page's in-band refusal
    same = dash.client("operator").post(f"/containers/{dash.web.pk}/send/", {"host": "dash-a", "how": "copy"},
                                        **json).json()
    assert (same["status"], same["errors"]) == (400, {"host": [
        "the container is on host dash-a already: pick another host"]})
    assert not Job.objects.filter(kind__in=("container.move", "container.copy")).exists()
    assert Container.objects.filter(host=dash.host_b).count() == 0
