"""Directories with a hard size limit: a sparse ext4 image, loop-mounted on the directory.

Why this and not XFS project quotas: project quotas need the state root itself on XFS (or ext4)
mounted with prjquota, which we cannot ask of every host; a loop-mounted image works on any
filesystem that holds sparse files. The kernel enforces the size: a write past it fails with
ENOSPC inside the container. Measured on this project's test host (ext4 root, kernel 6.18),
`truncate` + `mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1` + `mount -o loop` take
10-30 ms each for 1 GiB to 100 GiB images, and the new image uses 0.7-5 MiB of host disk.

API (paths are the directory that is limited; its image lives beside it as `<dir>.disk`):
  make(path, size)      create the image and mount it on `path` (an empty or missing directory)
  ensure_mounted(path)  mount it again after a reboot, a lazy unmount or a detach (no-op when mounted)
  detach(path)          unmount it from the host while a container's own mount namespace keeps it
  release(path)         unmount (lazily when busy), free the loop device, delete image and dir
  usage(path)           (used, total) bytes of the mounted filesystem

Why detach: every mount on the host is copied into each new container's mount namespace and detached from it
after pivot_root, so each running container's disk made every later start slower (bench/scale.py). A started
container holds its own copy; the host's goes, and comes back (the same loop device, so the same filesystem)
when the host needs the files. The device's number is kept beside the image (`<dir>.disk.loop`).

Images are sparse and mounted with `discard`, so deleted files give their space back to the
host; the sum of all sizes may exceed the host's free space (an overcommit the admin chooses
through the per-team maxima). Loop devices are attached with autoclear (loop.py, as mount(8) would, without
its scan of every loop device and of the mount table): the device goes away with the last unmount.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

MIN_SIZE = 16 * 1024 * 1024  # ext4 with a journal needs a few MiB of its own
IMAGE_SUFFIX = ".disk"
# ^resize_inode: its reserved group-descriptor blocks (for growing the filesystem online, which Berth never
# does) were 4.1 of the 4.3 MiB a 10 GiB disk writes at its create; each create copies those bytes, and at a
# thousand creates the host's writeback made that copy 3x slower (bench/scale.py).
MKFS_OPTIONS = ["-q", "-F", "-t", "ext4", "-m", "0", "-O", "^resize_inode",
                "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0"]
# noinit_itable: no background thread writing zeros into a sparse image; the fs knows which
# inode tables are uninitialised, so this is safe.
MOUNT_OPTIONS = "loop,discard,noinit_itable,nosuid,nodev"
MOUNT_DATA = "discard,noinit_itable"  # the filesystem's part of MOUNT_OPTIONS, for mount(2)


class QuotaError(Exception):
    """A quota'd directory could not be made, mounted or released (one readable line)."""


def templates_dir(state_root: str | os.PathLike[str]) -> Path:
    """Where a host keeps its empty filesystems to copy (templates.py)."""
    return Path(state_root) / "storage" / "disk-templates"


def image_of(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + IMAGE_SUFFIX)


def _device_note(path: str | os.PathLike[str]) -> Path:
    """Where the number of the loop device that holds `path`'s image is written."""
    p = Path(path)
    return p.with_name(p.name + IMAGE_SUFFIX + ".loop")


def _run(args: list[str], what: str) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise QuotaError(f"{what}: {args[0]} is not installed on this host") from None
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())[:300]
        raise QuotaError(f"{what}: {detail or f'{args[0]} exited with {proc.returncode}'}")


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """Whether a filesystem is mounted on `path` in our mount namespace: `path` is on another device than
    its parent (two stats; the image is always its own device). A read of mountinfo instead, whose lines
    grow with every container's disk and network namespace, cost O(containers) at every create and start
    (10 % of a create job's time at 300 containers, bench/scale.py)."""
    return os.path.ismount(os.path.realpath(path))


def make(path: str | os.PathLike[str], size: int, templates: str | os.PathLike[str]) -> None:
    """A directory at `path` that can hold at most about `size` bytes (filesystem overhead included).
    `templates`: a directory where a freshly made empty filesystem of each size is kept and copied
    (templates.py) instead of running mkfs for every container."""
    size = int(size)
    if size < MIN_SIZE:
        raise QuotaError(f"a disk limit must be at least {MIN_SIZE // (1024 * 1024)} MiB, not {size} bytes")
    p = Path(path)
    image = image_of(p)
    p.mkdir(mode=0o700, exist_ok=True)
    if any(p.iterdir()) or is_mounted(p):
        raise QuotaError(f"{p} is not an empty directory")
    try:
        from . import templates as _templates

        _templates.copy_to(Path(templates), size, image, _mkfs)
        _mount(image, p)
        with contextlib.suppress(OSError):
            os.rmdir(p / "lost+found")  # e2fsck recreates it if ever needed; users should not see it
    except BaseException:
        release(p)
        raise


def _mkfs(image: Path, size: int) -> None:
    """An empty ext4 filesystem of `size` bytes in the new file `image` (sparse: no block is written but
    the filesystem's own few MiB)."""
    with open(image, "xb") as f:
        f.truncate(size)
    _run(["mkfs.ext4", *MKFS_OPTIONS, str(image)], "cannot make the disk image")


def _mount(image: Path, path: Path) -> None:
    from workers.engine.runtime import linux as L

    from . import loop

    note = _device_note(path)
    try:
        known = int(note.read_text())
    except (OSError, ValueError):
        known = None
    try:
        # a container's namespace may still hold the filesystem (detach): mount that device, never a second one
        if known is not None and loop.mount_attached(known, str(image), str(path), "ext4",
                                                     L.MS_NOSUID | L.MS_NODEV, MOUNT_DATA):
            return
        note.unlink(missing_ok=True)
        n = loop.mount_image(str(image), str(path), "ext4", L.MS_NOSUID | L.MS_NODEV, MOUNT_DATA)
    except loop.NoLoopConfigure:
        _run(["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(image), str(path)], f"cannot mount the disk of {path}")
        return  # no note: such a disk is never detached
    except OSError as e:
        raise QuotaError(f"cannot mount the disk of {path}: {e.strerror}") from None
    with contextlib.suppress(OSError):  # without its note the disk is simply never detached
        note.write_text(str(n))


def detach(path: str | os.PathLike[str]) -> bool:
    """Unmount `path` from the host's mount table while a container's own mount namespace keeps the filesystem
    (and so its loop device) alive; ensure_mounted brings the same one back. Only a disk whose device is known
    (its note), and only if nothing on the host uses the mount (no lazy unmount): True if it was unmounted."""
    from workers.engine.runtime import linux as L

    p = Path(path)
    if not _device_note(p).is_file() or not is_mounted(p):
        return False
    try:
        L.umount2(str(p), 0)
    except OSError:
        return False  # busy (a cp or commit reading it): it stays mounted
    return True


def ensure_mounted(path: str | os.PathLike[str]) -> bool:
    """Mount `path`'s image if it is not mounted (after a reboot); False when it has no image."""
    p = Path(path)
    image = image_of(p)
    if not image.is_file():
        return False
    if not is_mounted(p):
        p.mkdir(mode=0o700, exist_ok=True)
        _mount(image, p)
    return True


def release(path: str | os.PathLike[str]) -> None:
    """Unmount (lazily if still in use: the loop device goes with the last user), delete image and dir."""
    p = Path(path)
    while is_mounted(p):
        proc = subprocess.run(["umount", str(p)], capture_output=True, check=False)
        if proc.returncode != 0:
            _run(["umount", "-l", str(p)], f"cannot unmount {p}")
    image_of(p).unlink(missing_ok=True)
    _device_note(p).unlink(missing_ok=True)
    shutil.rmtree(p, ignore_errors=True)


def release_if_any(path: str | os.PathLike[str]) -> None:
    """release() for a directory that may or may not have a disk image of its own."""
    if image_of(path).exists() or is_mounted(path):
        release(path)


def usage(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(used, total) bytes of the filesystem mounted on `path`."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize
