"""containers/services.py: checks, validation naming the field, audit, idempotency — and nothing changed
on refusal. No worker runs here: submitted jobs stay queued."""

from __future__ import annotations

import io
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from containers import services
from containers.models import AuditEvent, Container, Image, Job
from tests.transfers import make_download, upload_of

pytestmark = pytest.mark.django_db


def snapshot():
    return (list(Container.objects.order_by("pk").values()), list(Image.objects.order_by("pk").values()),
            Job.objects.count())


def refused(fn, code, field=None, **kwargs):
    before = snapshot()
    with pytest.raises(services.ServiceError) as info:
        fn(**kwargs)
    assert info.value.code == code, info.value.message
    assert info.value.field == field
    assert snapshot() == before
    return info.value


def tarball(files=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (files or {"hello.txt": b"hi\n"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_create_container_queues_a_job(world):
    op = world.users["operator"]
    container, job = services.create_container(op, host=world.host, image="app-a:1", name="job-1",
                                               command=["echo", "hi"], env={"A": "1"}, memory="64m",
                                               cpus=0.5, labels={"x": "y"}, team=world.team_a)
    assert container.state == "created" and container.owner == op and container.team == world.team_a
    assert job.kind == "container.create" and job.state == "queued" and job.target_id == str(container.pk)
    assert job.params["image"] == "app-a:1" and job.params["memory"] == 64 << 20 and job.params["start"] is True
    assert job.params["env"] == {"A": "1"} and job.params["command"] == ["echo", "hi"]
    ev = AuditEvent.objects.get(action="container.create", result="ok")
    assert ev.actor == op and ev.detail == {"job": job.pk}
    named, _ = services.create_container(op, host=world.host.name, image=world.base)
    assert named.name and "_" in named.name and named.image == world.base


@pytest.mark.parametrize("kwargs,code,field", [
    ({"name": "web-a", "team": "A"}, "name_taken", "name"),  # taken in team A's name space
    ({"name": "bad name!"}, "invalid", "name"),
    ({"image": "nope:1"}, "no_such_image", "image"),
    ({"image": "app-b:1"}, "no_such_image", "image"),
    ({"image": "Bad Ref"}, "no_such_image", "image"),
    ({"memory": 1024}, "invalid", "memory"),
    ({"memory": "lots"}, "invalid", "memory"),
    ({"cpus": 99}, "invalid", "cpus"),
    ({"cpus": 0}, "invalid", "cpus"),
    ({"pids_limit": 0}, "invalid", "pids_limit"),
    ({"restart_policy": "sometimes"}, "invalid", "restart_policy"),
    ({"env": {"BAD KEY": "1"}}, "invalid", "env"),
    ({"mounts": ["/etc:/host-etc"]}, "forbidden", "mounts"),
    ({"mounts": ["vol:relative"]}, "invalid", "mounts"),
    ({"workdir": "relative"}, "invalid", "workdir"),
    ({"team": 999999}, "no_such_team", "team"),
    ({"host": "no-such-host"}, "no_such_host", "host"),
])
def test_create_container_refusals_name_the_field(world, kwargs, code, field):
    args = {"host": world.host, "image": "app-a:1", "name": "fresh", **kwargs}
    if args.get("team") == "A":
        args["team"] = world.team_a.pk
    refused(services.create_container, code, field, user=world.users["operator"], **args)
    assert AuditEvent.objects.filter(action="container.create", result__in=["invalid", "denied"]).count() == 1


def test_create_refused_for_viewer_and_outsider(world):
    refused(services.create_container, "forbidden", "image", user=world.users["viewer"], host=world.host,
            image="app-a:1")
    refused(services.create_container, "no_such_image", "image", user=world.users["outsider"], host=world.host,
            image=world.image_a)
    refused(services.create_container, "forbidden", "team", user=world.users["viewer"], host=world.host,
            image="busybox", team=world.team_a)


def test_superuser_may_bind_mount(world, tmp_path):
    c, job = services.create_container(world.users["root"], host=world.host, image="busybox",
                                       mounts=[f"{tmp_path}:/data:ro", "cache:/cache"])
    cache = c.volumes.get()
    assert job.params["mounts"] == [f"{tmp_path}:/data:ro", f"{cache.engine_id}:/cache"]
    assert job.params["requested_mounts"] == [f"{tmp_path}:/data:ro", "cache:/cache"]


def test_container_actions_by_role_and_state(world):
    u, c = world.users, world.web_a
    refused(services.container_action, "not_found", user=u["outsider"], container=c, action="stop")
    refused(services.container_action, "forbidden", user=u["viewer"], container=c, action="stop")
    refused(services.container_action, "forbidden", user=u["operator"], container=c, action="remove")
    refused(services.container_action, "conflict", user=u["operator"], container=c, action="start")
    refused(services.container_action, "conflict", user=u["admin"], container=c, action="remove")
    refused(services.container_action, "invalid", "signal", user=u["operator"], container=c, action="kill",
            params={"signal": "SIGNOPE"})
    refused(services.container_action, "invalid", "timeout", user=u["operator"], container=c, action="stop",
            params={"timeout": "soon"})
    refused(services.container_action, "invalid", "ref", user=u["operator"], container=c, action="commit",
            params={"ref": ""})
    refused(services.container_action, "invalid", "action", user=u["operator"], container=c, action="explode")
    stop = services.container_action(u["operator"], c, "stop", params={"timeout": 3})
    assert (stop.kind, stop.params, stop.target_id) == ("container.stop", {"timeout": 3}, str(c.pk))
    kill = services.container_action(u["owner"], c, "kill", params={"signal": "term"})
    assert kill.params == {"signal": "SIGTERM"}
    commit = services.container_action(u["operator"], c, "commit", params={"ref": "snap"})
    assert commit.params["ref"] == "snap:latest" and commit.params["team_id"] == world.team_a.pk
    rm = services.container_action(u["admin"], c, "remove", params={"force": True})
    assert rm.params == {"force": True} and Container.objects.get(pk=c.pk).state == "removing"
    refused(services.container_action, "conflict", user=u["admin"], container=Container.objects.get(pk=c.pk),
            action="remove", params={"force": True})
    denied = AuditEvent.objects.filter(result="denied").values_list("actor_name", "action")
    assert ("outsider", "container.stop") in denied and ("viewer", "container.stop") in denied


def test_idempotency_key_is_per_user(world):
    u, c = world.users, world.web_a
    first = services.container_action(u["operator"], c, "stop", idempotency_key="k1")
    again = services.container_action(u["operator"], c, "stop", idempotency_key="k1")
    other = services.container_action(u["admin"], c, "stop", idempotency_key="k1")
    assert first.pk == again.pk != other.pk
    refused(services.container_action, "idempotency_key_reused", "idempotency_key", user=u["operator"],
            container=c, action="restart", idempotency_key="k1")
    c1, j1 = services.create_container(u["operator"], host=world.host, image="busybox", idempotency_key="k2")
    c2, j2 = services.create_container(u["operator"], host=world.host, image="busybox", idempotency_key="k2")
    assert (c1.pk, j1.pk) == (c2.pk, j2.pk)
    # The documented form only (schema: ^[!-~]+$, at most 150): spaces, non-ASCII and long keys are refused.
    for bad in ("two words", "clé", "k" * 151):
        refused(services.container_action, "invalid", "idempotency_key", user=u["operator"], container=c,
                action="stop", idempotency_key=bad)


def test_import_checks_the_upload(world, settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = tmp_path
    op = world.users["operator"]
    upload = SimpleUploadedFile("rootfs.tar", tarball())
    job = services.import_image(op, host=world.host, upload=upload, ref="mine:1", team=world.team_a)
    staged = tmp_path / "uploads"
    assert job.kind == "image.import" and job.params["ref"] == "mine:1"
    assert job.params["team_id"] == world.team_a.pk and job.params["shared"] is False
    assert upload_of(job).read_bytes() == tarball() and "path" not in job.params
    assert [p.name for p in staged.iterdir()] == [upload_of(job).name]
    refused(services.import_image, "not_a_tarball", "file", user=op, host=world.host,
            upload=SimpleUploadedFile("x.tar", b"this is no archive" * 40), ref="mine:2")
    refused(services.import_image, "not_a_tarball", "file", user=op, host=world.host,
            upload=SimpleUploadedFile("x.tar", b""), ref="mine:2")
    refused(services.import_image, "invalid", "ref", user=op, host=world.host,
            upload=SimpleUploadedFile("x.tar", tarball()), ref="UPPER CASE")
    refused(services.import_image, "forbidden", "shared", user=op, host=world.host,
            upload=SimpleUploadedFile("x.tar", tarball()), ref="mine:3", shared=True)
    assert len(list(staged.iterdir())) == 1  # refused uploads leave nothing behind
    gz = services.import_image(op, host=world.host, upload=io.BytesIO(b"\x1f\x8b" + b"\0" * 100), ref="gz")
    assert gz.params["ref"] == "gz:latest"


def test_image_actions(world):
    u = world.users
    refused(services.image_action, "forbidden", user=u["operator"], image=world.image_a, action="tag",
            params={"ref": "x:1"})
    refused(services.image_action, "not_found", user=u["outsider"], image=world.image_a, action="save")
    refused(services.image_action, "invalid", "format", user=u["operator"], image=world.image_a, action="save",
            params={"format": "zip"})
    refused(services.image_action, "conflict", user=u["admin"], image=world.image_a, action="remove")
    refused(services.image_action, "name_taken", "ref", user=u["admin"], image=world.image_a, action="tag",
            params={"ref": "app-a:1"})  # taken in the image's (team A's) name space
    refused(services.image_action, "forbidden", user=u["operator"], image=world.base, action="remove")
    save = services.image_action(u["operator"], world.image_a, "save", params={"format": "oci-archive"})
    assert save.params == {"format": "oci-archive"} and save.target_id == str(world.image_a.pk)
    tag = services.image_action(u["admin"], world.image_a, "tag", params={"ref": "app-a:2"})
    assert tag.params == {"ref": "app-a:2"}
    assert services.image_action(u["outsider"], world.base, "save").kind == "image.save"


def test_share_image(world):
    u = world.users
    refused(services.share_image, "forbidden", user=u["operator"], image=world.image_a, team=None, shared=True)
    refused(services.share_image, "no_such_team", "team", user=u["admin"], image=world.image_a, team=world.team_b,
            shared=False)
    img = services.share_image(u["admin"], world.image_a, world.team_a, True)
    assert Image.objects.get(pk=img.pk).shared
    assert AuditEvent.objects.filter(action="image.share", result="ok").count() == 1


def test_download_only_from_the_staging_dir_and_when_allowed(world, tmp_path, settings):
    settings.BERTH_TRANSFER_DIR = tmp_path
    host = world.host
    result = {"size": 3000, "filename": "web-a.tar", "content_type": "application/x-tar"}
    job = Job.objects.create(kind="container.export", host=host, target_type="container",
                             target_id=str(world.web_a.pk), requested_by=world.users["owner"],
                             state="succeeded", result=result)
    make_download(job, b"x" * 3000)
    response = services.download_response(world.users["operator"], job)
    assert response["Content-Length"] == "3000" and response["Content-Type"] == "application/x-tar"
    assert b"".join(response.streaming_content) == b"x" * 3000
    assert 'filename="web-a.tar"' in response["Content-Disposition"]
    response.file_to_stream.close()  # (response.close() would signal request_finished)
    refused(services.download_response, "not_found", user=world.users["outsider"], job=job)
    refused(services.download_response, "forbidden", user=world.users["viewer"], job=job)
    # A path in the result names nothing: only the file the worker pushed for this job is served.
    outside = tmp_path / "secret"
    outside.write_bytes(b"no")
    other = Job.objects.create(kind="container.export", host=host, target_type="container",
                               target_id=str(world.web_a.pk), requested_by=world.users["owner"], state="succeeded",
                               result={**result, "path": str(outside)})
    refused(services.download_response, "not_found", user=world.users["owner"], job=other)
    Job.objects.filter(pk=job.pk).update(state="running", result=result)
    job.refresh_from_db()
    refused(services.download_response, "conflict", user=world.users["owner"], job=job)
    probe = Job.objects.create(kind="host.probe", host=host, requested_by=world.users["owner"], state="succeeded")
    refused(services.download_response, "no_download", user=world.users["owner"], job=probe)


def test_looks_like_archive():
    assert services.looks_like_archive(tarball()[:512])
    v7 = bytearray(tarball()[:512])
    v7[257:265] = b"\0" * 8  # no ustar magic: the header checksum still tells
    v7[148:156] = b"        "
    v7[148:156] = f"{sum(v7):06o}\0 ".encode()
    assert services.looks_like_archive(bytes(v7))
    assert services.looks_like_archive(b"\x28\xb5\x2f\xfd" + b"\0" * 10)
    assert not services.looks_like_archive(b"<html>" + b" " * 600)


async def test_downloads_stream_in_chunks_under_asgi(tmp_path):
    """Django would read a plain FileResponse whole into memory under ASGI; StreamedFile must not."""
    import os
    import warnings

    data = os.urandom(600 * 1024)
    (tmp_path / "big.tar").write_bytes(data)
    response = services.StreamedFile(open(tmp_path / "big.tar", "rb"), content_type="application/x-tar")
    assert response["Content-Length"] == str(len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "must consume synchronous iterators" would fail here
        chunks = [chunk async for chunk in response]
    response.file_to_stream.close()
    assert [len(c) for c in chunks] == [256 * 1024, 256 * 1024, 88 * 1024] and b"".join(chunks) == data
