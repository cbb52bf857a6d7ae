"""Names have owners, end to end: the API (DRF client, non-superusers) with real Celery workers and the real
image store and engine. A hostile tenant loads, imports and commits under names that are the system's or
another user's; the names land in the tenant's own name space and nothing of anyone else changes.

Each test's workers keep their store under their own temporary state root; containers and monitors are
removed by id/PID at the end (clean_state_root), even when a test fails."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from containers import jobs
from containers.models import Container, Image, Job, Team, TeamMembership
from tests.support import clean_state_root
from tests.transfers import submit_upload
from workers.engine.images import ImageStore

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture
def workers(berth_worker):
    """berth_worker, stopped at the end (all at once), then every container/monitor of its roots removed."""
    handles = []

    def start(name: str, state_root=None):
        handles.append(berth_worker(name, state_root=state_root))
        return handles[-1]

    cache.clear()  # API throttle counters
    yield start
    for handle in handles:
        handle.discard()
    for root in {h.state_root for h in handles}:
        clean_state_root(Path(root))
    cache.clear()


def client(user):
    from rest_framework.test import APIClient

    from containers.api.auth import create_token

    assert not user.is_superuser
    _, token = create_token(user, "names-e2e")
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c


def rootfs_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def docker_archive(tmp: Path, tags: list[str], marker: bytes) -> bytes:
    """A docker-archive (as `docker save` writes) of one hostile image carrying every name in `tags`."""
    store = ImageStore(tmp / "forge-store")
    src = tmp / "forge.tar"
    src.write_bytes(rootfs_tar({"etc/hijacked": marker}))
    store.import_tarball(src, tags[0])
    for tag in tags[1:]:
        store.tag(tags[0], tag)
    out = tmp / "forged.tar"
    store.save(tags, out, format="docker-archive")
    return out.read_bytes()


def post_archive(api, path: str, body: bytes, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return api.generic("POST", f"/api/v1/images/{path}?{qs}", body, content_type="application/x-tar")


def finished(wait_job, response) -> Job:
    assert response.status_code == 202, response.content
    return wait_job(Job.objects.get(pk=response.json()["id"]), timeout=120)


def seed(worker, wait_job) -> Image:
    job = wait_job(jobs.submit("image.seed", worker.host, params={}), timeout=120)
    assert job.state == Job.State.SUCCEEDED, job.error
    return Image.objects.get(host=worker.host, name="busybox", tag="latest", owner=None, team=None)


def listed(api, **query) -> list[dict]:
    r = api.get("/api/v1/images", query)
    assert r.status_code == 200, r.content
    return r.json()["results"]


def test_load_of_the_base_image_name_and_another_users_name_lands_in_the_loaders_name_space(
        workers, wait_job, tmp_path):
    User = get_user_model()
    victim, mallory, bystander = (User.objects.create_user(n, password=f"pw-{n}-123")
                                  for n in ("victim", "mallory", "bystander"))
    w = workers("names-load")
    store = ImageStore(w.state_root)
    base = seed(w, wait_job)
    base_digest = store.resolve("busybox:latest").digest
    imp = finished(wait_job, post_archive(client(victim), "import", rootfs_tar({"etc/mine": b"victim\n"}),
                                          ref="app:1", host=w.host_name))
    assert imp.state == Job.State.SUCCEEDED, imp.error
    app = Image.objects.get(pk=imp.result["image_id"])

    archive = docker_archive(tmp_path, ["busybox:latest", "app:1"], b"mallory was here\n")
    load = finished(wait_job, post_archive(client(mallory), "load", archive, host=w.host_name))
    assert load.state == Job.State.SUCCEEDED, load.error

    # The system's base image and the victim's image are untouched: same row, digest, owner, team.
    fresh_base, fresh_app = Image.objects.get(pk=base.pk), Image.objects.get(pk=app.pk)
    assert (fresh_base.digest, fresh_base.owner_id, fresh_base.team_id, fresh_base.shared) == \
        (base.digest, None, None, True)
    assert (fresh_app.digest, fresh_app.owner_id, fresh_app.team_id) == (app.digest, victim.pk, None)
    assert store.resolve("busybox:latest").digest == base_digest == base.digest
    # Mallory has her own busybox:latest and app:1, in her own name space.
    mine = Image.objects.filter(pk__in=[i["image_id"] for i in load.result["images"]])
    assert sorted(i.ref for i in mine) == ["app:1", "busybox:latest"]
    assert {(i.owner_id, i.shared) for i in mine} == {(mallory.pk, False)}
    assert all(i.digest != base.digest and i.digest != app.digest for i in mine)
    # Everyone still sees the base image; the bystander sees neither the victim's nor mallory's.
    seen = {(i["id"], i["ref"]) for i in listed(client(bystander))}
    assert (base.pk, "busybox:latest") in seen and not {i.pk for i in mine} & {pk for pk, _ in seen}
    assert app.pk not in {pk for pk, _ in seen}
    # Mallory's list shows her names as she gave them (never the host's scoped refs), and the base too.
    refs = {i["ref"] for i in listed(client(mallory))}
    assert refs == {"busybox:latest", "app:1"} and not any("/" in r for r in refs)
    # A container the victim runs from busybox:latest still gets the system's image.
    r = client(victim).post("/api/v1/containers", {"image": "busybox:latest", "host": w.host_name,
                                                   "start": False, "name": "check"}, format="json")
    assert r.status_code == 202, r.content
    assert Container.objects.get(name="check", owner=victim).image_id == base.pk

    # Loading again over mallory's own names is refused whole, before anything changes.
    again = finished(wait_job, post_archive(client(mallory), "load", docker_archive(
        tmp_path / "again", ["app:1"], b"second\n"), host=w.host_name))
    assert again.state == Job.State.FAILED and "app:1 already exists in your name space" in again.error
    assert Image.objects.get(owner=mallory, name="app").digest == \
        next(i for i in mine if i.name == "app").digest


def test_team_admin_loading_shared_does_not_replace_the_base_image_even_after_a_worker_restart(
        workers, wait_job, tmp_path):
    User = get_user_model()
    admin, other = User.objects.create_user("tadmin", password="pw-ta-123"), User.objects.create_user("other")
    team = Team.objects.create(name="crew")
    TeamMembership.objects.create(team=team, user=admin, role="admin")
    w = workers("names-share")
    store = ImageStore(w.state_root)
    base = seed(w, wait_job)

    load = finished(wait_job, post_archive(client(admin), "load", docker_archive(
        tmp_path, ["busybox:latest"], b"team base\n"), host=w.host_name, team=team.pk, shared="true"))
    assert load.state == Job.State.SUCCEEDED, load.error
    [loaded] = load.result["images"]
    theirs = Image.objects.get(pk=loaded["image_id"])
    assert (theirs.ref, theirs.team_id, theirs.shared) == ("busybox:latest", team.pk, True)
    assert store.resolve("busybox:latest").digest == base.digest != theirs.digest

    # A worker restart syncs the store's names to rows (and anyone may seed again): nothing becomes the base.
    w.stop(timeout=20)
    w2 = workers("names-share", state_root=w.state_root)
    seed(w2, wait_job)
    rows = Image.objects.filter(host=w2.host, name="busybox", tag="latest")
    bases = [r for r in rows if r.owner_id is None and r.team_id is None]
    assert [r.pk for r in bases] == [base.pk] and bases[0].digest == base.digest and bases[0].shared
    theirs.refresh_from_db()
    assert theirs.team_id == team.pk and theirs.shared and store.exists(theirs.engine_ref)
    assert rows.count() == 2
    # A user outside the team creating from busybox:latest gets the system's image, not the team's.
    r = client(other).post("/api/v1/containers", {"image": "busybox:latest", "host": w2.host_name,
                                                  "start": False}, format="json")
    assert r.status_code == 202, r.content
    assert Container.objects.get(owner=other).image_id == base.pk


def test_import_and_commit_never_replace_a_name(workers, wait_job, wait_for, tmp_path):
    User = get_user_model()
    alice, bob = User.objects.create_user("alice-n"), User.objects.create_user("bob-n")
    w = workers("names-imp")
    store = ImageStore(w.state_root)
    base = seed(w, wait_job)
    a, b = client(alice), client(bob)
    first = finished(wait_job, post_archive(a, "import", rootfs_tar({"one": b"1"}), ref="app:1", host=w.host_name))
    assert first.state == Job.State.SUCCEEDED, first.error
    app = Image.objects.get(pk=first.result["image_id"])

    # Over one's own name: 409 at ref, and no job.
    jobs_before = Job.objects.count()
    r = post_archive(a, "import", rootfs_tar({"two": b"2"}), ref="app:1", host=w.host_name)
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken", r.content
    assert "ref" in r.json()["error"]["fields"] and Job.objects.count() == jobs_before
    # A job that slipped past the check (a race) fails on the host without touching the image.
    raced, _ = submit_upload("image.import", w.host, rootfs_tar({"three": b"3"}), requested_by=alice, ref="app:1")
    raced = wait_job(raced)
    assert raced.state == Job.State.FAILED and "already exists in your name space" in raced.error
    assert Image.objects.get(pk=app.pk).digest == app.digest == store.resolve(app.engine_ref).digest

    # Over someone else's name (bob's import of app:1, of busybox:latest): his own image, theirs unchanged.
    for ref in ("app:1", "busybox:latest"):
        job = finished(wait_job, post_archive(b, "import", rootfs_tar({"bob": b"b"}), ref=ref, host=w.host_name))
        assert job.state == Job.State.SUCCEEDED, job.error
        row = Image.objects.get(pk=job.result["image_id"])
        assert (row.ref, row.owner_id) == (ref, bob.pk)
    assert Image.objects.get(pk=app.pk).digest == app.digest and Image.objects.get(pk=base.pk).digest == base.digest
    assert store.resolve("busybox:latest").digest == base.digest

    # Commit: alice's container as alice's existing app:1 is a 409 at ref; as busybox:latest it is her own.
    r = a.post("/api/v1/containers", {"image": "busybox:latest", "host": w.host_name, "name": "box",
                                      "start": False}, format="json")
    assert r.status_code == 202, r.content
    box = Container.objects.get(pk=r.json()["container"]["id"])
    created = wait_job(Job.objects.get(pk=r.json()["job"]["id"]), timeout=120)
    assert created.state == Job.State.SUCCEEDED, created.error
    r = a.post(f"/api/v1/containers/{box.pk}/commit", {"ref": "app:1"}, format="json")
    assert r.status_code == 409 and "ref" in r.json()["error"]["fields"], r.content
    r = a.post(f"/api/v1/containers/{box.pk}/commit", {"ref": "busybox:latest"}, format="json")
    commit = finished(wait_job, r)
    assert commit.state == Job.State.SUCCEEDED, commit.error
    made = Image.objects.get(pk=commit.result["image_id"])
    assert (made.ref, made.owner_id) == ("busybox:latest", alice.pk) and made.pk != base.pk
    assert store.resolve("busybox:latest").digest == base.digest == Image.objects.get(pk=base.pk).digest


def test_two_users_each_have_a_container_named_web(workers, wait_job, wait_for):
    User = get_user_model()
    ann, ben = User.objects.create_user("ann"), User.objects.create_user("ben")
    w = workers("names-web")
    seed(w, wait_job)
    made = {}
    for user in (ann, ben):
        r = client(user).post("/api/v1/containers", {"image": "busybox:latest", "host": w.host_name,
                                                     "name": "web", "command": ["true"], "start": False},
                              format="json")
        assert r.status_code == 202, r.content
        row = Container.objects.get(owner=user, name="web")
        job = wait_job(Job.objects.get(kind="container.create", target_id=str(row.pk)), timeout=120)
        assert job.state == Job.State.SUCCEEDED, job.error
        made[user.pk] = row
    assert made[ann.pk].engine_id != made[ben.pk].engine_id
    for user in (ann, ben):
        api = client(user)
        listing = api.get("/api/v1/containers").json()["results"]
        assert [(c["id"], c["name"]) for c in listing] == [(made[user.pk].pk, "web")]
        other = made[ben.pk if user is ann else ann.pk]
        assert api.get(f"/api/v1/containers/{other.pk}").status_code == 404
        # A second `web` in one's own name space is a 409 at name.
        r = api.post("/api/v1/containers", {"image": "busybox:latest", "host": w.host_name, "name": "web"},
                     format="json")
        assert r.status_code == 409 and "name" in r.json()["error"]["fields"], r.content
