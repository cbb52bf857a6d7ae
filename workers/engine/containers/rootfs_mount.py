"""A bundle's overlay rootfs mounted on the host, for runtimes that need root.path to be a real rootfs.

Berth's own runtime mounts the overlay named by the org.berth.rootfs.* annotations inside the container's mount
namespace, so nothing shows on the host. runc and crun only know root.path: for them the seam mounts the same
overlay at <bundle>/<root.path> before `create` and unmounts it after `delete`.
"""

from __future__ import annotations

import errno
import json
import os

from workers.engine.runtime import linux as L

MNT_DETACH = 2


def _rootfs_and_options(bundle: str | os.PathLike[str]) -> tuple[str, str | None]:
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    root = (cfg.get("root") or {}).get("path") or "rootfs"
    rootfs = root if os.path.isabs(root) else os.path.join(os.path.abspath(bundle), root)
    ann = cfg.get("annotations") or {}
    lower = ann.get("org.berth.rootfs.lowerdirs")
    if not lower:
        return rootfs, None  # a plain directory: every runtime can use it as it is
    opts = f"lowerdir={lower}"
    if ann.get("org.berth.rootfs.upperdir"):
        opts += f",upperdir={ann['org.berth.rootfs.upperdir']},workdir={ann['org.berth.rootfs.workdir']}"
    return rootfs, opts


def mount(bundle: str | os.PathLike[str]) -> bool:
    """Mount the bundle's overlay at its root.path unless it is there already; True if the rootfs is an overlay."""
    rootfs, opts = _rootfs_and_options(bundle)
    if opts is None:
        return False
    if not os.path.ismount(rootfs):
        os.makedirs(rootfs, exist_ok=True)
        L.mount("overlay", rootfs, "overlay", 0, opts)
    return True


def unmount(bundle: str | os.PathLike[str]) -> None:
    """Undo mount(); a no-op when nothing is mounted there (safe to call after every delete)."""
    try:
        rootfs, opts = _rootfs_and_options(bundle)
    except (OSError, ValueError):
        return  # no bundle left: nothing we mounted can be there either
    if opts is None:
        return
    while os.path.ismount(rootfs):
        try:
            L.umount2(rootfs, 0)
        except OSError as e:
            if e.errno == errno.EINVAL:
                return
            if e.errno != errno.EBUSY:
                raise
            L.umount2(rootfs, MNT_DETACH)  # a process still has a handle: detach, the kernel frees it later
