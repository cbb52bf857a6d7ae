"""Base images made on this host from Debian's packages: busybox always, Debian (debootstrap) on request."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..timefmt import rfc3339
from .busybox import BUSYBOX, make_busybox_rootfs
from .debian import DEBIAN_REF, debian_ref, is_debian_base_ref, make_debian_image
from .store import Image, ImageStore
from .tarwrite import TarWriter, walk_tree

BUSYBOX_REF = "busybox:latest"
__all__ = ["BUSYBOX_REF", "DEBIAN_REF", "debian_ref", "ensure_base_images", "is_base_ref", "make_busybox_image",
           "make_debian_image"]


def _tar_tree(root: str, out_path: str, mtime: int) -> None:
    with open(out_path, "wb") as f:
        writer = TarWriter(f, mtime=mtime)
        for rel, node in walk_tree(root):
            writer.add(rel, node)
        writer.close()


def _stamp(mtime: int) -> str:
    return rfc3339(mtime)


def make_busybox_image(store: ImageStore, ref: str = BUSYBOX_REF) -> Image:
    """Import busybox-static as `busybox:latest`; mtimes and dates come from the busybox binary, so the
    same package gives the same image id on every build."""
    mtime = int(os.stat(BUSYBOX).st_mtime)
    with tempfile.TemporaryDirectory(prefix="base-", dir=store.tmp) as tmp:
        rootfs = make_busybox_rootfs(Path(tmp) / "rootfs")
        tar = os.path.join(tmp, "rootfs.tar")
        _tar_tree(str(rootfs), tar, mtime)
        return store.import_tarball(tar, ref, changes=['CMD ["sh"]'], created=_stamp(mtime),
                                    history="berth base image from Debian busybox-static")


def is_base_ref(ref: str) -> bool:
    """A ref the base-image builder makes (shared with every user when in the system name space)."""
    return ref == BUSYBOX_REF or is_debian_base_ref(ref)


def ensure_base_images(store: ImageStore, debian: bool = False, include: Iterable[str] | str | None = None,
                       cache_dir: str | None = None) -> list[str]:
    """Create the base images that are missing; returns the references made now. `include` (extra Debian
    packages) implies `debian` and makes `debian_ref(include)` instead of the plain Debian image."""
    made = []
    if not store.exists(BUSYBOX_REF):
        make_busybox_image(store)
        made.append(BUSYBOX_REF)
    ref = debian_ref(include)
    if (debian or ref != DEBIAN_REF) and not store.exists(ref):
        make_debian_image(store, ref, include=include, cache_dir=cache_dir)
        made.append(ref)
    return made
