"""Malformed archives uploaded through the API (DRF client, a non-superuser) to a real worker: the import or
load job fails with a sentence a person can read that names what is wrong, never a Python exception's name,
and the host's image store is left without a new image."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback|\[Errno")


def tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LAYER = tar([("etc/hostname", b"broken\n")])
CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(LAYER)]}}).encode()


def bad_header(data: bytes) -> bytes:
    """The first header's checksum field overwritten: tar's magic is still there, the header is not valid."""
    out = bytearray(data)
    out[148:156] = b"nonsense"
    return bytes(out)


def oci(index: object, *blobs: bytes) -> bytes:
    return tar([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(index).encode()),
                *((f"blobs/sha256/{sha(b)}", b) for b in blobs)])


def oci_manifest_without_sizes() -> bytes:
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + sha(CONFIG)},
                           "layers": [{"digest": "sha256:" + sha(LAYER)}]}).encode()
    return oci({"manifests": [{"digest": "sha256:" + sha(manifest), "size": len(manifest)}]}, manifest, CONFIG, LAYER)


CASES = [
    ("import", "truncated gzip", gzip.compress(LAYER)[:60],
     "the upload is not a tar archive (plain, gzip or zstd): truncated gzip stream"),
    ("import", "tar with a bad header", bad_header(LAYER),
     "the upload is not a tar archive (plain, gzip or zstd): corrupt tar header"),
    ("load", "truncated gzip", gzip.compress(tar([("manifest.json", b"[]")]))[:60],
     "the archive was refused: truncated gzip stream"),
    ("load", "tar with a bad header", bad_header(tar([("manifest.json", b"[]")])),
     "the archive was refused: corrupt tar header"),
    ("load", "manifest.json a list of strings", tar([("manifest.json", b'["a.json", "b.json"]')]),
     "the archive was refused: manifest.json: entry 0 must be a JSON object, not a string"),
    ("load", "manifest.json with missing keys", tar([("manifest.json", b'[{"RepoTags": ["x:1"]}]')]),
     "the archive was refused: manifest.json: entry 0's Config must be a non-empty string, not null"),
    ("load", "manifest.json pointing at missing layers",
     tar([("manifest.json", json.dumps([{"Config": sha(CONFIG) + ".json", "RepoTags": ["x:1"],
                                         "Layers": [sha(LAYER) + "/layer.tar"]}]).encode()),
          (sha(CONFIG) + ".json", CONFIG)]),
     f"the archive was refused: manifest.json: points to '{sha(LAYER)}/layer.tar', which is not in the archive"),
    ("load", "OCI layout whose index is a list", oci([{"digest": "sha256:" + "0" * 64}]),
     "the archive was refused: index.json: index.json must be a JSON object, not a list"),
    ("load", "OCI index entry without a digest", oci({"manifests": [{"size": 3}]}),
     "the archive was refused: index.json: manifests[0] has no valid sha256 digest (got null)"),
    ("load", "OCI manifest whose descriptors have no size", oci_manifest_without_sizes(),
     "the archive was refused: sha256:"),
]


@pytest.fixture
def setup(berth_worker, tmp_path):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from containers.api.auth import create_token
    from containers.models import Team, TeamMembership

    worker = berth_worker("archives")
    user = get_user_model().objects.create_user("uploader", password="pw-uploader-123")
    team = Team.objects.create(name="uploaders")
    TeamMembership.objects.create(team=team, user=user, role="operator")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user, 't')[1]}")
    return worker, client, team


def test_malformed_archives_fail_with_readable_errors(setup, wait_job, settings):
    from containers.models import Image, Job

    worker, client, team = setup
    host = worker.host
    failures = []
    for kind, what, data, expected in CASES:
        url = (f"/api/v1/images/import/?ref=broken:1&host={host.pk}&team={team.pk}" if kind == "import"
               else f"/api/v1/images/load/?host={host.pk}&team={team.pk}")
        r = client.post(url, data=data, content_type="application/x-tar")
        assert r.status_code == 202, (what, r.content[:300])
        job = wait_job(Job.objects.get(pk=r.json()["id"]))
        error = job.error
        if job.state != Job.State.FAILED or not error.startswith(expected) or EXCEPTION_NAME.search(error) \
                or "/uploads/" in error:
            failures.append(f"{kind} of a {what}: {job.state} {error!r}")
    assert not failures, "\n".join(failures)
    assert not Image.objects.filter(host=host).exclude(name__in=["busybox", "debian"]).exists()
