"""The state root's disk full during an import and a commit (issue 16, "Faults"): each fails with the host's
clear reason (ENOSPC, which a job shows as "the host ran out of disk space"), leaves no staged file behind,
the store stays readable with what it had, the container keeps running, and both work once space returns.
(The log flood on a full disk is tests/engine/monitor/test_disk_full.py.)"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.containers.conftest import teardown_root
from tests.engine.containers.helpers import wait_for_line
from workers.engine.containers import ContainerManager
from workers.engine.images.base import ensure_base_images
from workers.engine.images.store import ImageStore
from workers.job_errors import describe

pytestmark = pytest.mark.root

MiB = 1 << 20


@pytest.fixture
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state root on its own 48 MiB tmpfs (short path: the monitor's socket), unmounted by path at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = tmp_path_factory.mktemp("full")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(root)], check=True)
    try:
        ensure_base_images(ImageStore(root))
        yield root
    finally:
        teardown_root(root)  # containers' processes by pid, cgroups, the monitor and holder, mounts below
        subprocess.run(["umount", "-l", str(root)], check=False)
        if root.exists():  # the mount point, empty once the tmpfs is gone
            root.rmdir()


def _rootfs_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("data/big")
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))  # not zeros: every page is written, nothing sparse
    return buf.getvalue()


def _fill(root: Path) -> Path:
    """Write until the disk says it is full; the file that took the space (removing it frees it)."""
    filler = root / "filler"
    chunk = b"f" * MiB
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler


def _store_state(root: Path) -> tuple[list[str], list[str]]:
    """(tags the store lists, files left in its staging dir), the index parsed from disk as skopeo would."""
    json.loads((root / "images" / "index.json").read_text())
    tags = sorted(t for img in ImageStore(root).list() for t in img.tags)
    return tags, sorted(p.name for p in (root / "images" / "tmp").iterdir())


def test_import_and_commit_on_a_full_disk_fail_clearly_and_leave_the_store_whole(small_root, tmp_path):
    m = ContainerManager(small_root)
    c = m.create("busybox", command=["sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' x > /made; echo up; "
                                                 "while true; do usleep 20000; done"])
    m.start(c["id"])
    wait_for_line(m, c["id"], "up")
    pid = m.inspect(c["id"])["pid"]
    tarball = tmp_path / "rootfs.tar"  # off the small disk: only the store's side fills
    tarball.write_bytes(_rootfs_tar(4 * MiB))
    before = _store_state(small_root)
    assert before == (["busybox:latest"], [])

    filler = _fill(small_root)
    with pytest.raises(OSError) as imp:
        ImageStore(small_root).import_tarball(tarball, "big:1")
    assert imp.value.errno == errno.ENOSPC
    assert describe(imp.value, "image.import") == \
        "the host could not finish this image.import job: the host ran out of disk space"
    with pytest.raises(OSError) as com:
        m.commit(c["id"], "snap:1")
    assert com.value.errno == errno.ENOSPC
    assert _store_state(small_root) == before  # readable, nothing half-added, nothing staged left
    assert m.inspect(c["id"])["state"] == "running" and m.inspect(c["id"])["pid"] == pid

    filler.unlink()  # space returns
    ImageStore(small_root).import_tarball(tarball, "big:1")
    m.commit(c["id"], "snap:1")
    assert _store_state(small_root) == (["big:1", "busybox:latest", "snap:1"], [])
    made = m.create("snap:1", command=["sh", "-c", "wc -c < /made"])
    m.start(made["id"])
    wait_for_line(m, made["id"], "2097152")  # the commit holds the file the container wrote
    assert m.inspect(c["id"])["state"] == "running"
