"""The Hosts page's offline job timeout (issue 18): an admin sets it per host (empty: the setting's), the card
says what a job does while the host is offline, bad input is refused and others cannot change it. The rules
themselves are in tests/api/test_api_offline.py."""

from __future__ import annotations

import pytest

import tests.webapp.test_dashboard_pages as pages
from containers.models import AuditEvent, Host

dash = pages.dash  # two hosts, a team with one user per role, their objects

pytestmark = pytest.mark.django_db


def test_an_admin_sets_a_hosts_offline_job_timeout_on_the_hosts_page(dash, settings):
    # mutant: views_hosts.host_offline_timeout `offline_job_timeout=value` → `offline_job_timeout=None`
    settings.BERTH_OFFLINE_JOB_TIMEOUT = 600
    root = dash.client("root")
    url = f"/hosts/{dash.host.pk}/offline-timeout/"
    card = root.get("/hosts/").content.decode().split(f'id="host-{dash.host.pk}"', 1)[1]
    assert '<dd data-field="offline_job_wait">its queued jobs wait 600 s, then fail</dd>' in card
    assert root.post(url, {"offline_job_timeout": "45"}).status_code == 302
    assert Host.objects.get(pk=dash.host.pk).offline_job_timeout == 45
    card = root.get("/hosts/").content.decode().split(f'id="host-{dash.host.pk}"', 1)[1]
    assert '<dd data-field="offline_job_wait">its queued jobs wait 45 s, then fail</dd>' in card
    assert AuditEvent.objects.get(action="host.offline_job_timeout").via == "dashboard"
    root.post(url, {"offline_job_timeout": "0"})
    assert "its queued jobs wait until it is back" in root.get("/hosts/").content.decode()
    refused = root.post(url, {"offline_job_timeout": "-3"}, follow=True).content.decode()
    assert "Offline job timeout of dash-a not changed" in refused
    assert Host.objects.get(pk=dash.host.pk).offline_job_timeout == 0
    root.post(url, {"offline_job_timeout": ""})  # empty: back to the setting's
    assert Host.objects.get(pk=dash.host.pk).offline_job_timeout is None
    for role in ("owner", "admin", "outsider"):
        assert dash.client(role).post(url, {"offline_job_timeout": "5"}).status_code in (403, 404)
    assert Host.objects.get(pk=dash.host.pk).offline_job_timeout is None
