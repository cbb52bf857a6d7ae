"""Fixtures for engine tests that run real containers (as root).

``busybox_rootfs`` (session)
    A busybox rootfs built once from Debian's busybox-static (read-only by convention:
    use it as an overlay lower dir or copy it).
``bundle`` (function)
    Factory ``bundle(args, *, overlay=True, **changes) -> Bundle``: an OCI bundle in the
    test's tmp dir from ``default_spec(args)``; with ``overlay`` the rootfs is an overlay of
    ``busybox_rootfs`` (writes land in ``bundle.upper``), else a private copy. ``changes``
    are applied with ``bundle.edit(fn)`` style callables or ``cfg=`` dict updates.
``runtime`` (function)
    A ``workers.engine.runtime.api.Runtime`` with its own temporary root; at teardown every
    container it knows is force-deleted and its cgroup directories removed by path.
``swapper`` (session)
    A static binary ``swap A B`` exchanging two names forever (renameat2 RENAME_EXCHANGE): the attacker of
    the symlink-race tests, run inside a container or beside a runtime.
``cleanup_cgroup(path)`` / ``host_mounts_under(path)``: helpers for tests and finalizers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cgroup_parent import cgroup_dirs  # the engine tests and tests/soak.py import it from here too

CGROUP_ROOT = "/sys/fs/cgroup"


def host_mounts_under(path: str | os.PathLike[str]) -> list[str]:
    """Mount points in the host (our) mount namespace at or under `path`."""
    p = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == p or mp.startswith(p.rstrip("/") + "/"):
                out.append(mp)
    return out


def cleanup_cgroup(cgroup_path: str) -> None:
    """Kill whatever is left in the cgroup (by pid) and rmdir it in every hierarchy."""
    for d in cgroup_dirs(cgroup_path):
        for dirpath, _dirs, _files in os.walk(d, topdown=False):
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for _ in range(200):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def wchan(pid: int) -> str:
    with open(f"/proc/{pid}/wchan") as f:
        return f.read()


def in_freezer(pid: int) -> bool:
    """The task waits in the cgroup freezer, as the kernel says: __refrigerator (v1); v2 traps it in signal
    delivery (do_freezer_trap, inlined into get_signal on this kernel)."""
    return wchan(pid) in ("__refrigerator", "do_freezer_trap", "get_signal")


SWAPPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
/* swap A B: exchange the two names forever (a file or dir with a symlink to the host) */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    for (;;)
        if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0) {
            perror("renameat2");
            return 1;
        }
}
"""


@pytest.fixture(scope="session")
def swapper(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (make installs it)")
    d = tmp_path_factory.mktemp("swapper")
    (d / "swap.c").write_text(SWAPPER)
    out = d / "swap"
    res = subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(d / "swap.c")], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static binary (libc6-dev missing?): {res.stderr[-300:]}")
    return out


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workers.engine.images.busybox import make_busybox_rootfs

    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@dataclass
class Bundle:
    path: Path
    config: dict
    upper: Path | None

    @property
    def rootfs(self) -> Path:
        return self.path / self.config["root"]["path"]

    def save(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))

    def edit(self, fn: Callable[[dict], object]) -> Bundle:
        fn(self.config)
        self.save()
        return self


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path) -> Callable[..., Bundle]:
    from workers.engine.runtime.spec import default_spec

    made = []

    def make(args: list[str], *, overlay: bool = True, name: str | None = None) -> Bundle:
        d = tmp_path / (name or f"bundle-{len(made)}")
        d.mkdir()
        cfg = default_spec(args)
        cfg["hostname"] = "berth-test"
        upper = None
        if overlay:
            (d / "rootfs").mkdir()
            upper, work = d / "upper", d / "work"
            upper.mkdir()
            work.mkdir()
            cfg["annotations"] = {"org.berth.rootfs.lowerdirs": str(busybox_rootfs),
                                  "org.berth.rootfs.upperdir": str(upper), "org.berth.rootfs.workdir": str(work)}
        else:
            shutil.copytree(busybox_rootfs, d / "rootfs", symlinks=True)
        b = Bundle(d, cfg, upper)
        b.save()
        made.append(b)
        return b

    return make


class TestRuntime:
    """A Runtime plus bookkeeping so that teardown removes everything by id/path."""

    def __init__(self, root: Path):
        from workers.engine.runtime.api import Runtime

        self.root = root
        self.rt = Runtime(str(root))
        self.ids: list[str] = []
        self.cgroups: list[str] = []

    def new_id(self, stem: str = "c") -> str:
        cid = f"t{stem}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        self.cgroups.append(f"/berth/{cid}")
        return cid

    def __getattr__(self, name: str):
        return getattr(self.rt, name)

    def run_capture(self, cid: str, b: Bundle) -> tuple[int, str, str]:
        """Foreground run; (exit code, stdout, stderr). Output must fit a pipe buffer."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            code = self.rt.run(cid, str(b.path), stdin=os.open(os.devnull, os.O_RDONLY), stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        with os.fdopen(out_r) as o, os.fdopen(err_r) as e:
            return code, o.read(), e.read()

    def wait_stopped(self, cid: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.rt.state(cid)["status"] != "stopped":
            if time.monotonic() > deadline:
                raise AssertionError(f"container {cid} did not stop within {timeout}s")
            time.sleep(0.01)

    def teardown(self) -> None:
        for cid in self.ids:
            try:
                self.rt.delete(cid, force=True)
            except Exception:  # noqa: BLE001 - best effort, then by path below
                pass
            try:
                from workers.engine.runtime.state import alive

                st = json.loads((self.root / cid / "state.json").read_text())
                if st.get("pid") and alive(st["pid"], st.get("start_time")):  # by pid, never by name
                    os.kill(st["pid"], signal.SIGKILL)
            except (OSError, ValueError):
                pass
        for cg in self.cgroups:
            cleanup_cgroup(cg)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[TestRuntime]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    t = TestRuntime(tmp_path / "runtime-root")
    try:
        yield t
    finally:
        t.teardown()
