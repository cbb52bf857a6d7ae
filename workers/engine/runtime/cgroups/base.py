"""`Cgroup`: one container's cgroup, the interface the runtime uses on every host.

`Cgroup(path, dirs)` gives a `CgroupV2` when the only hierarchy is cgroup2 (a pure v2 host) and a
`CgroupV1` otherwise (v1 and hybrid hosts: limits and the freezer are v1's, the cgroup2 directory is
only made, joined and removed). What is the same on both (joining, listing and signalling the
processes, removing the directories) lives here; the subclasses hold the file logic of their version.
"""

from __future__ import annotations

import _signal as signal  # signal's own functions and numbers, without its enum import (see jsonfast)
import errno
import os
import time

from .files import read, write
from .hierarchy import MOUNTINFO, UNIFIED, hierarchies


class Cgroup:
    """One container's cgroup: `dirs` maps hierarchy key -> directory."""

    def __new__(cls, path: str, dirs: dict[str, str], mountinfo: str = MOUNTINFO) -> Cgroup:
        if cls is Cgroup:
            from .v1 import CgroupV1
            from .v2 import CgroupV2

            cls = CgroupV2 if list(dirs) == [UNIFIED] else CgroupV1
        return super().__new__(cls)

    def __init__(self, path: str, dirs: dict[str, str], mountinfo: str = MOUNTINFO):
        self.path = path
        self.dirs = dirs
        self.mountinfo = mountinfo  # where the hierarchies are read from (a fake tree in tests)

    @classmethod
    def for_path(cls, path: str, mountinfo: str = MOUNTINFO) -> Cgroup:
        dirs = {}
        for key, mnt, root in hierarchies(mountinfo):
            rel = path
            if root != "/" and rel.startswith(root):  # we run inside a cgroup namespace/bind mount
                rel = rel[len(root):] or "/"
            dirs[key] = os.path.join(mnt, rel.lstrip("/")).rstrip("/")
        return cls(path, dirs, mountinfo)

    def to_json(self) -> dict:
        return {"path": self.path, "dirs": self.dirs}

    @classmethod
    def from_json(cls, d: dict) -> Cgroup:
        return cls(d["path"], d["dirs"])

    @property
    def v2(self) -> bool:
        return list(self.dirs) == [UNIFIED]

    def dir_for(self, controller: str) -> str | None:
        for key, d in self.dirs.items():
            if controller in key.split(","):
                return d
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def join(self, pid: int) -> None:
        for f in self.procs_files():
            write(f, pid)

    def pids(self) -> list[int]:
        d = self.dir_for("pids") or self.dir_for("freezer") or next(iter(self.dirs.values()))
        found: list[int] = []
        for dirpath, _dirs, _files in os.walk(d):
            try:
                found += [int(x) for x in read(os.path.join(dirpath, "cgroup.procs")).split()]
            except OSError:
                pass
        return sorted(set(found))

    def signal_all(self, sig: int) -> None:
        frozen = False
        if sig == signal.SIGKILL:  # frozen, nothing can fork away between listing and killing
            try:
                self.freeze()
                frozen = True
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if frozen:
            self.thaw()

    def destroy(self, timeout: float = 5.0) -> None:
        """rmdir every directory (children first); retried while the last tasks exit."""
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            if not os.path.isdir(d):
                continue
            subdirs = [dp for dp, _, _ in os.walk(d, topdown=False)]
            for sd in subdirs:
                while True:
                    try:
                        os.rmdir(sd)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as e:
                        if e.errno != errno.EBUSY or time.monotonic() > deadline:
                            raise
                        time.sleep(0.005)

    # -- freezer -------------------------------------------------------------------------

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, on: bool) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    # -- limits --------------------------------------------------------------------------

    def apply(self, res: dict | None) -> None:
        if res:
            self._apply(res)

    def _apply(self, res: dict) -> None:
        raise NotImplementedError

    def _apply_cpuset_and_pids(self, res: dict) -> None:
        cpu = res.get("cpu") or {}
        if cpu.get("cpus"):
            self._set("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset", "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit") is not None:
            self._set("pids", "pids.max", pids["limit"] if pids["limit"] > 0 else "max")

    def _set(self, controller: str, name: str, value, optional: bool = False) -> None:
        d = self.dir_for(controller)
        if d is None:
            if optional:
                return
            raise OSError(errno.ENOTSUP, f"cgroup: controller {controller} is not available on this host")
        p = os.path.join(d, name)
        if optional and not os.path.exists(p):
            return
        write(p, value)

    def _set_strict(self, controller: str, name: str, value) -> None:
        d = self.dir_for(controller)
        if d is None or not os.path.exists(os.path.join(d, name)):
            raise OSError(errno.ENOTSUP, f"cgroup: cannot set {name}: not supported on this host")
        write(os.path.join(d, name), value)

    # -- reporting -----------------------------------------------------------------------

    def _oom_text(self) -> str | None:
        """The file that holds the oom_kill counter, read (None: no memory controller)."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        try:
            text = self._oom_text()
        except OSError:
            return 0
        for line in (text or "").splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def _rd(self, ctrl: str, name: str) -> str | None:
        d = self.dir_for(ctrl)
        try:
            return read(os.path.join(d, name)).strip() if d else None
        except OSError:
            return None

    @staticmethod
    def _num(s: str | None) -> int | None:
        return None if s is None or s == "max" else int(s)

    def _memory_cpu_stats(self) -> tuple[dict, dict]:
        raise NotImplementedError

    def stats(self) -> dict:
        out: dict = {}
        out["memory"], out["cpu"] = self._memory_cpu_stats()
        out["pids"] = {"current": self._num(self._rd("pids", "pids.current")), "limit": self._num(self._rd("pids", "pids.max"))}
        out["memory"]["oom_kills"] = self.oom_kills()
        return out
