"""Persistent network namespaces: a namespace bind-mounted on a file under the state root, made before the
container so netavark can configure it and the runtime joins it by path (config.json linux.namespaces)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path

from workers.engine.runtime import linux as L


def is_mounted(path: Path) -> bool:
    """True when something (the namespace) is mounted on `path`, not the bare file left after a reboot: the
    mounted nsfs file is on another device than its directory (two stats, not a read of mountinfo)."""
    try:
        return os.lstat(path).st_dev != os.lstat(path.parent).st_dev
    except OSError:
        return False


def create(path: Path) -> None:
    """A new network namespace with `lo` up, kept alive by a bind mount on `path` (made if missing).

    Made by a short-lived thread (a network namespace is per thread): unshare, lo up, bind-mount its
    /proc/thread-self/ns/net, exit. No fork of the (large) worker process: that cost 30+ ms per start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_mounted(path):
        return
    path.touch(mode=0o600, exist_ok=True)
    failure: list[BaseException] = []

    def make() -> None:
        try:
            L.unshare(L.CLONE_NEWNET)
            L.loopback_up()
            L.mount("/proc/thread-self/ns/net", str(path), None, L.MS_BIND)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            failure.append(e)

    thread = threading.Thread(target=make, name="berth-netns", daemon=True)
    thread.start()
    thread.join()  # the thread is gone: its namespace lives on through the mount only
    if failure:
        raise OSError(errno.EIO, f"cannot make a network namespace at {path}: {failure[0]}")


def remove(path: Path) -> None:
    """Unmount and delete; the namespace goes when its last user (a process, another mount) is gone."""
    while is_mounted(path):
        try:
            L.umount2(str(path), L.MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
