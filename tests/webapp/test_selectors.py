"""containers/selectors: the list reads the API and the dashboard share. Visibility comes from
permissions (a tenant never sees another team's rows, whatever the filter); filters and ordering
refuse bad values with the field named."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from django.utils import timezone

from containers import selectors, services
from containers.models import AuditEvent, Container, Job
from tests.webapp.test_dashboard_pages import dash  # noqa: F401

pytestmark = pytest.mark.django_db


def q(text: str = "") -> QueryDict:
    return QueryDict(text)


def names(rows) -> list[str]:
    return [r.name for r in rows]


def test_containers_are_the_visible_ones_filtered(dash):  # noqa: F811
    owner, outsider, root = dash.users["owner"], dash.users["outsider"], dash.users["root"]
    Container.objects.create(name="db", host=dash.host_b, image=dash.app, image_ref="app:1", owner=owner,
                             team=dash.team, state="exited", labels={"tier": "data"})
    assert names(selectors.containers(owner, q())) == ["db", "web"]  # newest first
    assert names(selectors.containers(outsider, q())) == ["hidden-box"]
    assert sorted(names(selectors.containers(root, q()))) == ["db", "hidden-box", "web"]
    assert names(selectors.containers(owner, q("state=running"))) == ["web"]
    assert names(selectors.containers(owner, q("label=tier=data"))) == ["db"]
    assert names(selectors.containers(owner, q("host=dash-b"))) == ["db"]
    assert names(selectors.containers(owner, q("image=app:1&ordering=name"))) == ["db", "web"]
    # a filter never widens what one sees: the outsider's name, asked for by the owner, finds nothing
    assert names(selectors.containers(owner, q("search=hidden"))) == []
    assert names(selectors.containers(outsider, q("image=app"))) == []


@pytest.mark.parametrize("query,field", [("ordering=secret", "ordering"), ("state=asleep", "state"),
                                         ("label==x", "label"), ("image=99999999999999999999", "image")])
def test_bad_filters_are_refused_naming_the_field(dash, query, field):  # noqa: F811
    with pytest.raises(services.ServiceError) as caught:
        list(selectors.containers(dash.users["owner"], q(query)))
    assert caught.value.status == 400 and caught.value.field == field


def test_images_shared_filter_and_visibility(dash):  # noqa: F811
    outsider = dash.users["outsider"]
    assert names(selectors.images(outsider, q())) == ["busybox", "secret"]  # the shared base and its own
    assert names(selectors.images(outsider, q("shared=true"))) == ["busybox"]
    with pytest.raises(services.ServiceError) as caught:
        selectors.images(outsider, q("shared=yes"))
    assert caught.value.field == "shared"


def test_hosts_page_lists_only_visible_containers_per_host(dash):  # noqa: F811
    hosts = {h.name: h for h in selectors.pages.hosts_with_containers(dash.users["owner"])}
    assert set(hosts) == {"dash-a", "dash-b"}
    assert names(hosts["dash-a"].visible_containers) == ["web"] and hosts["dash-b"].visible_containers == []


def test_pending_imports_are_the_users_own_unfinished(dash):  # noqa: F811
    owner, viewer = dash.users["owner"], dash.users["viewer"]
    mine = Job.objects.create(kind="image.import", host=dash.host, requested_by=owner, state="running")
    Job.objects.create(kind="image.import", host=dash.host, requested_by=owner, state="succeeded")
    Job.objects.create(kind="image.load", host=dash.host, requested_by=viewer, state="queued")
    assert selectors.pages.pending_imports(owner) == [mine]


def test_audit_strict_for_the_api_lenient_for_the_page(dash):  # noqa: F811
    root = dash.users["root"]
    AuditEvent.objects.create(actor=root, actor_name="root", action="x.y", result="ok", created=timezone.now())
    assert selectors.audit_events(root, q("result=&action=x.y"), strict=False).count() == 1  # empty form field
    with pytest.raises(services.ServiceError) as caught:
        selectors.audit_events(root, q("result=maybe"))
    assert caught.value.field == "result"
