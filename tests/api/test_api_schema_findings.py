"""What schemathesis found, as plain API tests (a non-superuser, the DRF client): the schema and the
server agree on which input is valid, and a revoked (deleted) token is gone from the API."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from containers.models import ApiToken


def _schema(client: APIClient) -> dict:
    return client.get("/api/schema/?format=json").json()


def _pattern_accepts(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None  # JSON Schema patterns are unanchored searches


# --- token names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\x00b", "\x00", " ", " \t\n", "x" * 100 + " "])
def test_token_name_the_schema_excludes_is_refused_naming_the_field(world, api_client, name):
    client = api_client("operator")
    field = _schema(client)["components"]["schemas"]["TokenCreateRequest"]["properties"]["name"]
    schema_valid = (field["minLength"] <= len(name) <= field["maxLength"]
                    and _pattern_accepts(field["pattern"], name))
    assert not schema_valid, f"the schema promises {name!r} is a valid name"
    answer = client.post("/api/v1/tokens", {"name": name}, format="json")
    assert answer.status_code == 400
    assert "name" in answer.json()["error"]["fields"]


@pytest.mark.parametrize("name", ["ci", " laptop ", "x" * 100, "é\u2028z"])
def test_token_name_the_schema_accepts_is_created(world, api_client, name):
    client = api_client("operator")
    field = _schema(client)["components"]["schemas"]["TokenCreateRequest"]["properties"]["name"]
    assert _pattern_accepts(field["pattern"], name)
    answer = client.post("/api/v1/tokens", {"name": name}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["name"] == name.strip()


# --- label filters ----------------------------------------------------------------------------------------

def _label_pattern(client: APIClient) -> str:
    params = _schema(client)["paths"]["/api/v1/containers"]["get"]["parameters"]
    return next(p for p in params if p["name"] == "label")["schema"]["items"]["pattern"]


@pytest.mark.parametrize("label", ["=", "=web", " =web", "\t=", "tier\x00=web", "\x00"])
def test_label_filter_the_schema_excludes_is_refused_naming_the_field(world, api_client, label):
    client = api_client("owner")
    assert not _pattern_accepts(_label_pattern(client), label)
    answer = client.get("/api/v1/containers", {"label": label})
    assert answer.status_code == 400
    assert "label" in answer.json()["error"]["fields"]


@pytest.mark.parametrize("label, names", [("tier", ["web-a"]), ("tier=web", ["web-a"]), ("tier=db", []),
                                          ("", ["web-a"]), ("  ", ["web-a"]), ("a=b=c", []),
                                          ('ti"er', []), ("$.x[0]", []), ("é=\x01", [])])
def test_label_filter_the_schema_accepts_answers_200(world, api_client, label, names):
    client = api_client("owner")
    assert _pattern_accepts(_label_pattern(client), label)
    answer = client.get("/api/v1/containers", {"label": label})
    assert answer.status_code == 200, answer.content
    assert [c["name"] for c in answer.json()["results"]] == names


# --- revoked tokens ---------------------------------------------------------------------------------------

def test_a_revoked_token_is_gone_from_the_api(world, api_client):
    client = api_client("viewer")
    made = client.post("/api/v1/tokens", {"name": "ci"}, format="json").json()
    revoked = client.delete(f"/api/v1/tokens/{made['id']}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert client.get(f"/api/v1/tokens/{made['id']}").status_code == 404
    assert made["id"] not in [t["id"] for t in client.get("/api/v1/tokens").json()["results"]]
    again = client.delete(f"/api/v1/tokens/{made['id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    # kept for the record (the dashboard lists it as revoked), and it no longer signs anyone in
    assert ApiToken.objects.get(pk=made["id"]).revoked is not None
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {made['token']}").get("/api/v1/hosts").status_code == 401


# --- boolean and number query parameters -----------------------------------------------------------------

@pytest.mark.parametrize("query, field", [("follow=", "follow"), ("timestamps=yes", "timestamps"),
                                          ("follow=%20true", "follow"), ("tail=", "tail"), ("tail=%205", "tail"),
                                          ("tail=1_0", "tail"), ("tail=ALL", "tail"), ("since=", "since"),
                                          ("since=%205", "since"), ("since=nan", "since"), ("since=1_0", "since")])
def test_logs_query_the_schema_excludes_is_refused_naming_the_field(world, api_client, query, field):
    answer = api_client("owner").get(f"/api/v1/containers/{world.web_a.pk}/logs?{query}")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"]


@pytest.mark.parametrize("query", ["follow=false", "timestamps=TRUE&follow=0", "tail=all", "tail=0",
                                   "since=1700000000.5", "since=1e-05"])
def test_logs_query_the_schema_accepts_is_served(world, api_client, query):
    answer = api_client("owner").get(f"/api/v1/containers/{world.web_a.pk}/logs?{query}")
    assert answer.status_code in (200, 202), answer.content


@pytest.mark.parametrize("method, path", [("delete", "/api/v1/containers/{web_a}?force=yes"),
                                          ("delete", "/api/v1/images/{image_a}?force="),
                                          ("get", "/api/v1/images?shared=on")])
def test_boolean_query_parameter_is_true_false_1_or_0(world, api_client, method, path):
    client = api_client("owner")
    url = path.format(web_a=world.web_a.pk, image_a=world.image_a.pk)
    answer = getattr(client, method)(url)
    assert answer.status_code == 400, answer.content
    name = url.rsplit("?", 1)[1].split("=")[0]
    assert list(answer.json()["error"]["fields"]) == [name]
    assert getattr(client, method)(url.split("?")[0] + f"?{name}=1").status_code in (200, 202)


# --- ids that are digits to str.isdigit() but not to int() ------------------------------------------------

@pytest.mark.parametrize("pk", ["³", "١٢", "9" * 30])
@pytest.mark.parametrize("method, path", [("post", "/api/v1/containers/{pk}/stop"),
                                          ("get", "/api/v1/containers/{pk}/logs"),
                                          ("delete", "/api/v1/tokens/{pk}"), ("get", "/api/v1/teams/{pk}/members"),
                                          ("get", "/api/v1/containers?host={pk}")])
def test_an_id_int_cannot_read_is_not_found(world, api_client, method, path, pk):
    answer = getattr(api_client("owner"), method)(path.format(pk=pk), format="json")
    if "?" not in path:
        expected = 404
    else:  # a filter naming nothing lists nothing; an id larger than any row can have is a 400 naming it
        expected = 400 if pk.isascii() else 200
    assert answer.status_code == expected, answer.content
