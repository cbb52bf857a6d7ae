"""A mount destination swapped for a symlink while the runtime sets up the rootfs (runc's CVE-2021-30465):
another container sharing the volume flips `vol/sub` between a directory and a symlink to a host directory,
as fast as the kernel allows, while the runtime mounts a bind at `/vol/sub/x` again and again in a fresh
mount namespace. The mount must never land outside the rootfs, and nothing may be made in the host dir."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from workers.engine.runtime import linux as L
from workers.engine.runtime.rootfs import do_mount

pytestmark = pytest.mark.root

ROUNDS = 3000


def _mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [mp for mp in (line.split()[4] for line in f) if mp == prefix or mp.startswith(prefix + "/")]


def _unmount_all(prefix: str) -> None:
    """Unmount what this round made in the rootfs; its path may go through the swapped name: retry."""
    for _ in range(10_000):
        left = _mounts_under(prefix)
        if not left:
            return
        for mp in reversed(left):
            try:
                L.umount2(mp, L.MNT_DETACH)
            except OSError:
                pass
    raise RuntimeError(f"could not unmount {_mounts_under(prefix)}")


def _child(rootfs: Path, source: Path, outside: Path) -> int:
    """In a new mount namespace: mount ROUNDS times; 1 if a mount ever appeared outside the rootfs."""
    L.unshare(L.CLONE_NEWNS)
    L.mount(None, "/", None, L.MS_PRIVATE | L.MS_REC)
    refused = 0
    for _ in range(ROUNDS):
        try:
            do_mount(str(rootfs), str(rootfs), {"destination": "/vol/sub/x", "type": "bind", "source": str(source),
                                                "options": ["rbind", "ro"]}, False)
        except OSError:
            refused += 1  # the swap was seen: refused, as it should be
        if _mounts_under(str(outside)):
            return 1
        _unmount_all(str(rootfs))
    print(f"refused {refused} of {ROUNDS}", flush=True)
    return 0


def test_bind_mount_never_lands_outside_the_rootfs_under_a_swap_race(tmp_path: Path, swapper: Path):
    rootfs, source, outside = tmp_path / "rootfs", tmp_path / "volume-data", tmp_path / "host-dir"
    for d in (rootfs / "vol" / "sub", source, outside):
        d.mkdir(parents=True)
    outside.chmod(0o700)
    (rootfs / "vol" / "sub.lnk").symlink_to(outside)
    attacker = subprocess.Popen([str(swapper), "sub", "sub.lnk"], cwd=rootfs / "vol")
    try:
        pid = os.fork()
        if pid == 0:
            code = 2
            try:
                code = _child(rootfs, source, outside)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        attacker.send_signal(signal.SIGKILL)
        attacker.wait()
    code = os.waitstatus_to_exitcode(status)
    assert code != 1, "a bind mount landed on the host directory"
    assert code == 0, "the child failed (its traceback is above)"
    assert list(outside.iterdir()) == []  # no mount point made there either
    assert _mounts_under(str(tmp_path)) == []  # nothing leaked into our own namespace
