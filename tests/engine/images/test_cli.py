"""The host command line `python -m workers.engine`: image verbs, export and commit, podman-like exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from workers.engine.images import ImageStore

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


def berth(root: Path, *args: str, stdin=None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "workers.engine", "--root", str(root), *args], cwd=REPO,
                          stdin=stdin, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_image_verbs(state_root, busybox_tar, tmp_path):
    with open(busybox_tar, "rb") as f:
        image_id = berth(state_root, "image", "import", "-c", "CMD [\"sh\"]", "-", "bb:1", stdin=f).stdout.strip()
    berth(state_root, "image", "tag", "bb:1", "bb:2")
    listed = json.loads(berth(state_root, "--json", "image", "ls").stdout)
    assert [(i["Id"], sorted(i["RepoTags"])) for i in listed] == [(image_id, ["bb:1", "bb:2"])]
    assert "bb" in berth(state_root, "images").stdout
    archive = tmp_path / "bb.tar"
    berth(state_root, "image", "save", "--format", "docker-archive", "-o", str(archive), "bb:1", "bb:2")
    other = tmp_path / "other"
    out = berth(other, "image", "load", "-i", str(archive)).stdout
    assert "bb:1" in out and "bb:2" in out
    missing = berth(other, "image", "inspect", "nope", check=False)
    assert missing.returncode == 125 and "nope: image not known" in missing.stderr
    assert json.loads(berth(other, "image", "inspect", "bb:2").stdout)[0]["Id"] == image_id


def test_export_commit_and_rm_in_use(state_root, busybox_tar, tmp_path):
    store = ImageStore(state_root)
    store.import_tarball(busybox_tar, "busybox")
    cdir = state_root / "containers" / "abc123"
    store.prepare_rootfs("busybox", cdir)
    (cdir / "container.json").write_text(json.dumps({"name": "web"}))
    (cdir / "upper" / "added").write_text("made in the container\n")

    refused = berth(state_root, "image", "rm", "busybox", check=False)
    assert refused.returncode == 125 and "in use by container(s) abc123" in refused.stderr

    out = tmp_path / "web.tar"
    berth(state_root, "export", "-o", str(out), "web")
    with tarfile.open(out) as tf:
        assert tf.extractfile("added").read() == b"made in the container\n"
    new_id = berth(state_root, "commit", "-m", "add a file", "-c", "LABEL x=y", "web", "web:snap").stdout.strip()
    image = ImageStore(state_root).resolve("web:snap")
    assert image.id == new_id and image.config["config"]["Labels"] == {"x": "y"}
    assert (ImageStore(state_root).layer_dir(image.diff_ids[-1]) / "added").is_file()
