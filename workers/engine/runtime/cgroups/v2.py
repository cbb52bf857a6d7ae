"""cgroup v2 on a pure v2 host (one unified hierarchy): controller delegation down the path,
cgroup.freeze, and the v2 limit files. Never run by the kernel here (this host is hybrid): the file
logic is under test with a fake tree (tests/engine/runtime/test_cgroups_v2_fake.py)."""

from __future__ import annotations

import os
import time

from .base import Cgroup
from .files import read, write
from .hierarchy import UNIFIED, hierarchies

CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io", "hugetlb")


class CgroupV2(Cgroup):
    def dir_for(self, controller: str) -> str | None:
        return self.dirs[UNIFIED]  # one hierarchy holds every controller

    def create(self) -> None:
        self._enable_controllers(self.dirs[UNIFIED])

    def _enable_controllers(self, d: str) -> None:
        """Make `d` level by level, delegating the controllers we set to each level's children
        (a v2 controller's files appear in a child only once its parent's subtree_control names it)."""
        mnt = next(m for k, m, _ in hierarchies(self.mountinfo) if k == UNIFIED)
        rel = os.path.relpath(d, mnt)
        cur = mnt
        parts = [] if rel == "." else rel.split("/")
        for part in parts:
            avail = read(os.path.join(cur, "cgroup.controllers")).split()
            want = [c for c in CONTROLLERS if c in avail]
            if want:
                try:
                    write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in want))
                except OSError:
                    pass  # a parent with processes in it cannot delegate; limits then fail loudly
            cur = os.path.join(cur, part)
            os.makedirs(cur, exist_ok=True)
        os.makedirs(d, exist_ok=True)

    # -- freezer -------------------------------------------------------------------------

    def _set_frozen(self, on: bool) -> None:
        d = self.dirs[UNIFIED]
        write(os.path.join(d, "cgroup.freeze"), "1" if on else "0")
        want = "frozen 1" if on else "frozen 0"
        for _ in range(2000):  # the kernel reports the state it reached in cgroup.events
            if want in read(os.path.join(d, "cgroup.events")):
                return
            time.sleep(0.001)

    def frozen(self) -> bool:
        try:
            return "frozen 1" in read(os.path.join(self.dirs[UNIFIED], "cgroup.events"))
        except OSError:
            return False

    # -- limits --------------------------------------------------------------------------

    def _apply(self, res: dict) -> None:
        mem = res.get("memory") or {}
        if mem.get("limit") is not None:
            lim = mem["limit"]
            self._set("memory", "memory.max", "max" if lim < 0 else lim)
            swap = mem.get("swap")
            if swap is not None:  # OCI's swap is memory+swap; v2's swap.max is the swap alone
                self._set("memory", "memory.swap.max", "max" if swap < 0 or lim < 0 else max(swap - lim, 0), optional=True)
        if mem.get("reservation") is not None:
            self._set("memory", "memory.low", mem["reservation"])
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):  # v1 shares 2..262144 onto v2 weight 1..10000, as runc maps them
            self._set("cpu", "cpu.weight", 1 + ((cpu["shares"] - 2) * 9999) // 262142)
        if cpu.get("quota") or cpu.get("period"):
            q = cpu.get("quota")
            self._set("cpu", "cpu.max", f"{'max' if not q or q < 0 else q} {cpu.get('period') or 100000}")
        self._apply_cpuset_and_pids(res)  # the same files on v1 and v2
        for k, v in (res.get("unified") or {}).items():
            write(os.path.join(self.dirs[UNIFIED], k), v)

    # -- reporting -----------------------------------------------------------------------

    def _oom_text(self) -> str | None:
        return read(os.path.join(self.dirs[UNIFIED], "memory.events"))

    def _memory_cpu_stats(self) -> tuple[dict, dict]:
        num, rd = self._num, self._rd
        memory = {"usage": num(rd("memory", "memory.current")), "limit": num(rd("memory", "memory.max"))}
        usage = None
        for line in (rd("cpu", "cpu.stat") or "").splitlines():
            if line.startswith("usage_usec "):
                usage = int(line.split()[1]) * 1000
        return memory, {"usage_ns": usage}
