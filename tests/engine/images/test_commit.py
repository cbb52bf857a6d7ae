"""The issue's "done when": busybox imported here, changed inside a real container (deletion and an
opaque dir), committed, saved as OCI and docker archives that skopeo and umoci read, loaded into a
second state root, and a container there sees the change. Export is checked on the way."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from workers.engine.images import ImageStore
from workers.engine.images.merged import is_whiteout
from workers.engine.images.tarsafe import OVERLAY_OPAQUE_XATTR

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


def _opaque(path) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def run_container(store: ImageStore, state_root: Path, cid: str, ref: str, script: str) -> str:
    """Run `sh -c script` in a container made from `ref` with the native runtime; return its stdout."""
    from workers.engine.runtime.spec import default_spec

    cdir = state_root / "containers" / cid
    rootfs = store.prepare_rootfs(ref, cdir)
    bundle = cdir / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    spec = default_spec(["/bin/sh", "-c", script])
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["process"]["env"] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    spec.setdefault("annotations", {}).update({
        "org.berth.rootfs.lowerdirs": ":".join(rootfs["lowerdirs"]),
        "org.berth.rootfs.upperdir": rootfs["upperdir"],
        "org.berth.rootfs.workdir": rootfs["workdir"],
    })
    (bundle / "config.json").write_text(json.dumps(spec))
    runtime = [sys.executable, "-m", "workers.engine.runtime", "--root", str(state_root / "runtime")]
    try:
        proc = subprocess.run([*runtime, "run", "--bundle", str(bundle), cid], capture_output=True, text=True,
                              cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([*runtime, "delete", "--force", cid], capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


CHANGE = ("rm /etc/hostname && rm -rf /usr/sbin && mkdir /usr/sbin && echo only > /usr/sbin/only"
          " && echo hi > /hello")
LOOK = "cat /hello; ls /usr/sbin; test -e /etc/hostname || echo hostname-gone; cat /etc/passwd | head -1"


def test_commit_save_load_run_on_a_second_host(store, state_root, busybox_tar, tmp_path):
    store.import_tarball(busybox_tar, "busybox")
    run_container(store, state_root, "c1", "busybox", CHANGE)
    upper = Path(store._container(state_root / "containers/c1")["upperdir"])
    assert is_whiteout(os.lstat(upper / "etc/hostname"))
    assert _opaque(upper / "usr/sbin")

    export = tmp_path / "c1.tar"
    store.export_container(state_root / "containers/c1", export)
    with tarfile.open(export) as tf:
        names = set(tf.getnames())
    assert {"hello", "usr/sbin/only", "bin/busybox"} <= names
    assert "etc/hostname" not in names and "usr/sbin/chroot" not in names

    image_id = store.commit(state_root / "containers/c1", "changed:1", author="Ada <ada@example.org>",
                            message="tuned", changes=["ENV TUNED=yes", "LABEL team=infra", "WORKDIR /usr/sbin"])
    image = store.resolve("changed:1")
    assert image.id == image_id and len(image.diff_ids) == 2
    assert image.config["history"][-1]["comment"] == "tuned"
    assert image.config["author"] == "Ada <ada@example.org>"
    assert "TUNED=yes" in image.config["config"]["Env"] and image.config["config"]["Labels"] == {"team": "infra"}
    with tarfile.open(store.blob_path(image.manifest["layers"][-1]["digest"])) as tf:
        diff = set(tf.getnames())
    assert {"etc/.wh.hostname", "usr/sbin/.wh..wh..opq", "usr/sbin/only", "hello"} <= diff

    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"changed.{fmt}"
        store.save(["changed:1"], archive, format=fmt)
        out = json.loads(subprocess.run(["skopeo", "inspect", f"{fmt}:{archive}"], check=True,
                                        capture_output=True, text=True).stdout)
        assert len(out["Layers"]) == 2 and out["Labels"] == {"team": "infra"}
        if fmt == "oci-archive":
            layout = tmp_path / "layout"
            layout.mkdir()
            subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
            bundle = tmp_path / "umoci-bundle"
            subprocess.run(["umoci", "unpack", "--image", f"{layout}:changed:1", str(bundle)], check=True,
                           capture_output=True)
            assert (bundle / "rootfs/usr/sbin").exists() and os.listdir(bundle / "rootfs/usr/sbin") == ["only"]
            assert not (bundle / "rootfs/etc/hostname").exists()

        host2 = tmp_path / f"host2-{fmt}"
        second = ImageStore(host2)
        [loaded] = second.load(archive)
        assert loaded.tags == ["changed:1"] and loaded.id == image_id
        top = second.layer_dir(loaded.diff_ids[-1])
        assert stat.S_ISCHR(os.lstat(top / "etc/hostname").st_mode) and _opaque(top / "usr/sbin")
        seen = run_container(second, host2, "c2", "changed:1", LOOK).split()
        assert seen == ["hi", "only", "hostname-gone", "root:x:0:0:root:/root:/bin/sh"]
        second.release_rootfs(host2 / "containers/c2")
    store.release_rootfs(state_root / "containers/c1")
