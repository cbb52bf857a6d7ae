"""Names have owners (issue #10): poking another tenant's ids leaves no trace of that object's name or team
in the poker's own audit log, and a taken name is only ever one of the poker's own name space."""

from __future__ import annotations

from containers.models import AuditEvent, Job


def test_poking_other_tenants_ids_records_them_by_id_only(world, api_client, tmp_path):
    host = world.host
    host.facts = {"state_root": str(tmp_path)}
    host.save()
    job_b = Job.objects.create(kind="container.export", host=host, target_type="container",
                               target_id=str(world.web_b.pk), requested_by=world.users["outsider"],
                               state="succeeded", result={})
    poker = world.users["operator"]  # team A's operator, not a superuser
    a = api_client(poker)
    b, img = world.web_b.pk, world.image_b.pk
    pokes = [("post", f"/api/v1/containers/{b}/stop"), ("post", f"/api/v1/containers/{b}/kill"),
             ("post", f"/api/v1/containers/{b}/commit", {"ref": "x:1"}), ("get", f"/api/v1/containers/{b}/logs"),
             ("delete", f"/api/v1/containers/{b}?force=1"), ("post", f"/api/v1/images/{img}/save"),
             ("post", f"/api/v1/images/{img}/tag", {"ref": "y:1"}), ("delete", f"/api/v1/images/{img}"),
             ("get", f"/api/v1/jobs/{job_b.pk}/download"), ("post", f"/api/v1/jobs/{job_b.pk}/cancel"),
             ("get", f"/api/v1/teams/{world.team_b.pk}/members")]
    for method, path, *body in pokes:
        response = getattr(a, method)(path, *(body or [{}]), format="json") if method != "get" else a.get(path)
        assert response.status_code == 404, (method, path, response.status_code)
    events = list(AuditEvent.objects.filter(actor=poker))
    assert {e.action for e in events} >= {"container.stop", "container.kill", "container.commit",
                                          "container.remove", "image.save", "image.tag", "image.remove",
                                          "job.download", "job.cancel", "team.members"}
    assert all(e.result == "denied" for e in events)
    for event in events:
        assert event.target_id and event.target_repr == "" and event.team_id is None, \
            (event.action, event.target_repr, event.team_id)
    # What the poker can read of their own log (the API) shows no name of team B's objects.
    text = a.get("/api/v1/audit", {"page_size": 100}).content.decode()
    for secret in ("web-b", "app-b", "team-b", "container.export #"):
        assert secret not in text
    assert f'"team":{world.team_b.pk}' not in text.replace(" ", "")


def test_a_taken_name_is_a_conflict_only_in_ones_own_name_space(world, api_client):
    op = api_client("operator")
    # Team B has a container `web-b` and an image `app-b:1`: for team A's operator those names are free.
    r = op.post("/api/v1/containers", {"image": "busybox", "name": "web-b", "host": world.host.name}, format="json")
    assert r.status_code == 202, r.content
    r = op.post("/api/v1/containers", {"image": "busybox", "name": "web-b", "host": world.host.name}, format="json")
    assert r.status_code == 409 and r.json()["error"]["fields"] == {"name": [r.json()["error"]["message"]]}
    # Team A's names are the team's: its operator creating `web-a` in the team is refused at `name`.
    r = op.post("/api/v1/containers", {"image": "busybox", "name": "web-a", "host": world.host.name,
                                       "team": world.team_a.pk}, format="json")
    assert r.status_code == 409 and "name" in r.json()["error"]["fields"]
    # Tagging team A's image with a name team B has is fine; with one team A has, a 409 at ref.
    adm = api_client("admin")
    assert adm.post(f"/api/v1/images/{world.image_a.pk}/tag", {"ref": "app-b:1"}, format="json").status_code == 202
    r = adm.post(f"/api/v1/images/{world.image_a.pk}/tag", {"ref": "app-a:1"}, format="json")
    assert r.status_code == 409 and "ref" in r.json()["error"]["fields"]
    # Names that would be another name space's engine refs are refused for everyone.
    r = api_client("root").post(f"/api/v1/images/{world.base.pk}/tag", {"ref": f"u{world.users['owner'].pk}/x:1"},
                                format="json")
    assert r.status_code == 400 and "ref" in r.json()["error"]["fields"] and "reserved" in r.json()["error"]["message"]
