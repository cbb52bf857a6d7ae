"""Fixtures for the image store tests: a temporary state root, a store, a busybox rootfs tarball and a
helper that crafts tar archives entry by entry (hostile ones included)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.engine.images.busybox import make_busybox_rootfs
from workers.engine.images.store import ImageStore
from workers.engine.images.tarwrite import TarWriter, write_tree

from .registry_server import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture
def state_root(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    root.mkdir()
    return root


@pytest.fixture
def store(state_root: Path) -> ImageStore:
    return ImageStore(state_root)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("busybox")
    rootfs = make_busybox_rootfs(tmp / "rootfs")
    out = tmp / "busybox.tar"
    with open(out, "wb") as f:
        writer = TarWriter(f, mtime=1_700_000_000)
        write_tree(str(rootfs), writer)
        writer.close()
    shutil.rmtree(rootfs)
    return out


def entry(name: str, data: bytes = b"", *, type: bytes = tarfile.REGTYPE, mode: int = 0o644,
          linkname: str = "", devmajor: int = 0, devminor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = type
    info.mode = mode
    info.size = len(data) if type == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.mtime = 1_700_000_000
    return info, data


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def one_file_tar(data: bytes) -> bytes:
    """A plain PAX tar holding `data` as big.bin (fixed mtime: the same bytes give the same layer digest)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mtime = len(data), 1_700_000_000
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every path under `path` with its type and size: compare before and after to prove nothing changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size if not os.path.isdir(p) else 0)
    return out


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A docker-registry on loopback (registry_server.py), stopped by PID at the end."""
    r = LocalRegistry(tmp_path / "registry")
    r.start()
    try:
        yield r
    finally:
        r.stop()
