"""Out-of-range numbers and oversized bodies are 4xx naming the field, never 500 (OverflowError from the
database, RequestDataTooBig, int() of a huge digit string) and never a job the host would fail.
Requests are made as a non-superuser (team A's operator) through the DRF client and the dashboard."""

from __future__ import annotations

import pytest

BIG = "1" * 30  # past SQLite's and PostgreSQL's 64-bit integers
HUGE = "7" * 5000  # past what int() converts (4300 digits)


def fields_of(r) -> dict:
    return r.json()["error"].get("fields", {})


@pytest.fixture
def op(api_client):
    return api_client("operator")


@pytest.mark.parametrize("url,field", [
    (f"/api/v1/images/?host={BIG}", "host"), (f"/api/v1/images/?owner={BIG}", "owner"),
    (f"/api/v1/images/?team={BIG}", "team"), (f"/api/v1/containers/?image={BIG}", "image"),
    (f"/api/v1/containers/?host={BIG}", "host"), (f"/api/v1/containers/?owner={BIG}", "owner"),
    (f"/api/v1/containers/?team={BIG}", "team"), (f"/api/v1/jobs/?host={BIG}", "host"),
    (f"/api/v1/audit/?team={BIG}", "team"), (f"/api/v1/images/?host={HUGE}", "host"),
    ("/api/v1/containers/?page_size=" + HUGE, "page_size"),
])
def test_id_filters_out_of_range_are_400_naming_the_filter(op, url, field):
    r = op.get(url)
    assert r.status_code == 400, r.content[:300]
    assert field in fields_of(r)
    assert "must be" in fields_of(r)[field][0]


def test_id_filters_in_range_still_filter(op, world):
    r = op.get(f"/api/v1/containers/?team={world.team_a.pk}&host={world.host.pk}&image={world.image_a.pk}")
    assert r.status_code == 200 and [c["name"] for c in r.json()["results"]] == ["web-a"]
    assert op.get(f"/api/v1/containers/?owner={2**63 - 1}").json()["count"] == 0


@pytest.mark.parametrize("method,path", [
    ("get", "containers/{}/"), ("get", "containers/{}/logs/"), ("post", "containers/{}/start/"),
    ("delete", "images/{}/"), ("post", "jobs/{}/cancel/"), ("get", "jobs/{}/download/"),
    ("get", "teams/{}/members/"), ("delete", "tokens/{}/"), ("get", "hosts/{}/"),
])
@pytest.mark.parametrize("ident", [BIG, HUGE])
def test_ids_in_paths_out_of_range_are_404(op, method, path, ident):
    r = getattr(op, method)("/api/v1/" + path.format(ident), *([{}] if method == "post" else []), format="json")
    assert r.status_code == 404, r.content[:300]


def test_team_member_id_out_of_range_is_404(api_client, world):
    admin = api_client("admin")
    for ident in (BIG, HUGE):
        url = f"/api/v1/teams/{world.team_a.pk}/members/{ident}/"
        assert admin.patch(url, {"role": "viewer"}, format="json").status_code == 404
        assert admin.delete(url).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"pids_limit": 2**63}, "pids_limit"), ({"pids_limit": 4 * 1024 * 1024 + 1}, "pids_limit"),
    ({"pids_limit": HUGE}, "pids_limit"), ({"memory": 2**70}, "memory"),
    ({"memory": "99999999999999999999999g"}, "memory"), ({"restart_policy": f"on-failure:{BIG}"}, "restart_policy"),
    ({"team": int(BIG)}, "team"), ({"host": int(BIG)}, "host"), ({"image": int(BIG)}, "image"),
    ({"image": HUGE}, "image"), ({"host": HUGE}, "host"),
])
def test_create_numbers_past_the_database_and_kernel_are_refused(op, world, body, field):
    from containers.models import Container, Job

    before = (Container.objects.count(), Job.objects.count())
    r = op.post("/api/v1/containers/", {"image": "busybox", "team": world.team_a.pk, **body}, format="json")
    assert 400 <= r.status_code < 500, r.content[:300]
    assert field in fields_of(r), r.content[:300]
    assert (Container.objects.count(), Job.objects.count()) == before


def test_largest_pids_limit_the_kernel_takes_is_accepted(op, world):
    from containers.models import TeamLimits

    # the kernel's bound, once the team's admin-set maximum allows it (the system maximum is lower)
    TeamLimits.objects.update_or_create(team=world.team_a, defaults={"max_pids_limit": 4 * 1024 * 1024})
    r = op.post("/api/v1/containers/", {"image": "busybox", "team": world.team_a.pk, "start": False,
                                        "pids_limit": 4 * 1024 * 1024}, format="json")
    assert r.status_code == 202, r.content[:300]


@pytest.mark.parametrize("body", [{"signal": HUGE}, {"signal": BIG}, {"signal": "³"}, {"signal": "SIG١"}])
def test_kill_signal_out_of_range(op, world, body):
    r = op.post(f"/api/v1/containers/{world.web_a.pk}/kill/", body, format="json")
    assert r.status_code == 400 and "signal" in fields_of(r)


def test_body_over_djangos_limit_is_413(op, world):
    r = op.post("/api/v1/containers/", {"image": "busybox", "env": {"A": "x" * 3_000_000}}, format="json")
    assert r.status_code == 413, r.content[:300]
    assert "larger than 2.5 MiB" in r.json()["error"]["message"] and "body" in fields_of(r)


# --- the dashboard ------------------------------------------------------------------------------------

@pytest.fixture
def dash_client(world):
    from django.test import Client

    client = Client()
    client.force_login(world.users["operator"])
    return client


def _create_form(world, **fields):
    return {"host": world.host.pk, "image": world.base.pk, "name": "", "command": "", "restart_policy": "no",
            "team": world.team_a.pk, "start": "on", **fields}


@pytest.mark.parametrize("fields,field", [
    ({"pids_limit": str(2**63)}, "pids_limit"), ({"memory": str(2**70)}, "memory"),
    ({"restart_policy": "on-failure", "max_retries": BIG}, "restart_policy"),
    ({"host": BIG}, "host"), ({"image": HUGE}, "image"),
])
def test_dashboard_create_form_numbers_out_of_range(dash_client, world, fields, field):
    from containers.models import Job

    r = dash_client.post("/containers/new/", _create_form(world, **fields), HTTP_ACCEPT="application/json")
    body = r.json()  # the page's script reads {"ok", "status", "errors"}
    assert body["ok"] is False and body["status"] == 400 and field in body["errors"], r.content[:300]
    r = dash_client.post("/containers/new/", _create_form(world, **fields))  # the plain form
    assert r.status_code == 400 and 'class="field-error"' in r.content.decode()
    assert not Job.objects.exists()


def test_dashboard_body_over_djangos_limit_is_413(dash_client, world):
    r = dash_client.post("/containers/new/", _create_form(world, env="A=" + "x" * 3_000_000))
    assert r.status_code == 413 and b"larger than 2.5 MiB" in r.content


def test_dashboard_lists_and_filters(dash_client, world):
    assert dash_client.get(f"/containers/state/?ids={BIG},{HUGE},{world.web_a.pk}").json()["containers"][-1][
        "id"] == world.web_a.pk
    assert dash_client.get(f"/jobs/state/?ids={BIG},{HUGE}").json() == {"jobs": []}
    r = dash_client.get(f"/audit/?team={BIG}")
    assert r.status_code == 400 and b"team must be an id" in r.content
    assert dash_client.get(f"/containers/new/?from_job={HUGE}&image={BIG}").status_code == 200
    assert dash_client.get(f"/containers/{world.web_a.pk}/?job={HUGE}").status_code == 200


@pytest.mark.parametrize("page", [BIG, HUGE])
def test_a_page_past_the_end_is_404_whatever_its_size(op, page):
    r = op.get(f"/api/v1/hosts/?page={page}")
    assert r.status_code == 404, r.content[:300]


@pytest.mark.parametrize("url", ["/api/v1/containers/?image=³", "/api/v1/images/?host=١", "/api/v1/volumes/?team=²",
                                 "/api/v1/containers/?owner=³"])
def test_non_ascii_digits_in_filters_are_names_not_500(op, url):
    """'³'.isdigit() is True but int('³') raises: such a value is a name that matches nothing."""
    r = op.get(url)
    assert r.status_code == 200 and r.json()["count"] == 0, r.content[:300]
