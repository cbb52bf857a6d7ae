"""Persistent network namespaces: a namespace bind-mounted on a file under the state root, made before the
container so netavark can configure it and the runtime joins it by path (config.json linux.namespaces)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from workers.engine.runtime import linux as L


def is_mounted(path: Path) -> bool:
    """True when something (the namespace) is mounted on `path`, not the bare file left after a reboot."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False


def create(path: Path) -> None:
    """A new network namespace with `lo` up, kept alive by a bind mount on `path` (made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_mounted(path):
        return
    path.touch(mode=0o600, exist_ok=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only makes the namespace and mounts it; it never returns into Python's caller
        code = 1
        try:
            os.close(r)
            L.unshare(L.CLONE_NEWNET)
            L.loopback_up()
            L.mount("/proc/self/ns/net", str(path), None, L.MS_BIND)
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent as text
            with contextlib.suppress(OSError):
                os.write(w, str(e).encode()[:500])
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(errno.EIO, f"cannot make a network namespace at {path}: {msg or 'failed'}")


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
