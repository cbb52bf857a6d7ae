"""Base images made on this host from Debian's packages: busybox always, Debian (debootstrap) on request."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ..timefmt import rfc3339
from .busybox import BUSYBOX, make_busybox_rootfs
from .store import Image, ImageStore
from .tarsafe import TarPolicy
from .tarwrite import TarWriter, walk_tree

BUSYBOX_REF = "busybox:latest"
DEBIAN_REF = "debian:bookworm-slim"
_SKIP_IN_DEBIAN = ("dev/", "proc/", "sys/", "run/", "tmp/", "var/cache/apt/archives/", "var/lib/apt/lists/")


def _tar_tree(root: str, out_path: str, mtime: int, skip: tuple[str, ...] = ()) -> None:
    with open(out_path, "wb") as f:
        writer = TarWriter(f, mtime=mtime)
        for rel, node in walk_tree(root):
            if any(rel.startswith(s) for s in skip):
                continue
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


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 `URIs:` or one-line `deb` sources)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*")) + ["/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*(\S+)|deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+)", text, re.M):
            uri = m.group(1) or m.group(2)
            if "security" not in uri:
                return uri
    return "http://deb.debian.org/debian"


def make_debian_image(store: ImageStore, ref: str = DEBIAN_REF, suite: str = "bookworm") -> Image:
    """debootstrap --variant=minbase into a temp dir, then import it (minutes; needs the mirror)."""
    if not shutil.which("debootstrap"):
        raise FileNotFoundError("debootstrap not found: install Debian's debootstrap package")
    with tempfile.TemporaryDirectory(prefix="debian-", dir=store.tmp) as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        subprocess.run(["debootstrap", "--variant=minbase", suite, rootfs, debian_mirror()], check=True,
                       stdout=subprocess.DEVNULL)
        tar = os.path.join(tmp, "rootfs.tar")
        _tar_tree(rootfs, tar, int(datetime.now(UTC).timestamp()), skip=_SKIP_IN_DEBIAN)
        # Made here from Debian's own packages: its setuid binaries (su, passwd, mount) are expected.
        return store.import_tarball(tar, ref, changes=['CMD ["bash"]'], policy=TarPolicy(setuid="keep"),
                                    history=f"berth base image: debootstrap --variant=minbase {suite}")


def ensure_base_images(store: ImageStore, debian: bool = False) -> list[str]:
    """Create the base images that are missing; returns the references made now."""
    made = []
    if not store.exists(BUSYBOX_REF):
        make_busybox_image(store)
        made.append(BUSYBOX_REF)
    if debian and not store.exists(DEBIAN_REF):
        make_debian_image(store)
        made.append(DEBIAN_REF)
    return made
