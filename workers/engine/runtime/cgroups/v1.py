"""cgroup v1 (and hybrid hosts, where the v1 controllers hold every limit): the cpuset
inheritance, the freezer controller, the v1 limit files and the device allowlist."""

from __future__ import annotations

import errno
import os
import time

from .base import Cgroup
from .devices import DEFAULT_ALLOWED_DEVICES
from .files import read, write


class CgroupV1(Cgroup):
    def create(self) -> None:
        for key, d in self.dirs.items():
            if "cpuset" in key.split(","):
                self._mkdir_cpuset(d)
            else:
                os.makedirs(d, exist_ok=True)

    @staticmethod
    def _mkdir_cpuset(d: str) -> None:
        # v1 cpuset refuses tasks until cpus and mems are set: inherit them level by level
        parent = os.path.dirname(d)
        if not os.path.isdir(parent):
            CgroupV1._mkdir_cpuset(parent)
        if not os.path.isdir(d):
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
        for f in ("cpuset.cpus", "cpuset.mems"):
            p = os.path.join(d, f)
            if os.path.exists(p) and not read(p).strip():
                write(p, read(os.path.join(parent, f)).strip())

    # -- freezer -------------------------------------------------------------------------

    def _set_frozen(self, on: bool) -> None:
        d = self.dir_for("freezer")
        if d is None:
            raise OSError(errno.ENOTSUP, "cgroup: no freezer controller on this host")
        f = os.path.join(d, "freezer.state")
        want = "FROZEN" if on else "THAWED"
        for _ in range(2000):
            write(f, want)
            if read(f).strip() == want:
                return
            time.sleep(0.001)
        raise OSError(errno.EBUSY, f"cgroup: freezer did not reach {want}")

    def frozen(self) -> bool:
        try:
            d = self.dir_for("freezer")
            return d is not None and read(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except OSError:
            return False

    # -- limits --------------------------------------------------------------------------

    def _apply(self, res: dict) -> None:
        mem = res.get("memory") or {}
        if mem.get("limit") is not None:
            swap = mem.get("swap")
            try:
                self._set("memory", "memory.limit_in_bytes", mem["limit"])
                if swap is not None:
                    self._set("memory", "memory.memsw.limit_in_bytes", swap, optional=True)
            except OSError:
                if swap is None:
                    raise
                self._set("memory", "memory.memsw.limit_in_bytes", swap, optional=True)
                self._set("memory", "memory.limit_in_bytes", mem["limit"])
        elif mem.get("swap") is not None:
            self._set("memory", "memory.memsw.limit_in_bytes", mem["swap"], optional=True)
        if mem.get("reservation") is not None:
            self._set("memory", "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
            self._set("memory", "memory.swappiness", mem["swappiness"], optional=True)
        if mem.get("kernel") is not None:  # deprecated: recent kernels accept and ignore it
            self._set("memory", "memory.kmem.limit_in_bytes", mem["kernel"], optional=True)
        if mem.get("kernelTCP") is not None:
            self._set("memory", "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"], optional=True)
        if mem.get("disableOOMKiller"):
            self._set("memory", "memory.oom_control", 1)
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            self._set("cpu", "cpu.shares", cpu["shares"])
        if cpu.get("period"):
            self._set("cpu", "cpu.cfs_period_us", cpu["period"])
        if cpu.get("quota"):
            self._set("cpu", "cpu.cfs_quota_us", cpu["quota"])
        if cpu.get("realtimePeriod"):
            self._set("cpu", "cpu.rt_period_us", cpu["realtimePeriod"], optional=True)
        if cpu.get("realtimeRuntime"):
            self._set("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"], optional=True)
        self._apply_cpuset_and_pids(res)  # the same files on v1 and v2
        if "devices" in res and self.dir_for("devices"):
            self._apply_devices(res.get("devices") or [])
        # limits this host may not support are refused, as runc does, rather than silently dropped
        blk = res.get("blockIO") or {}
        if blk.get("weight"):
            self._set_strict("blkio", "blkio.weight", blk["weight"])
        if blk.get("leafWeight"):
            self._set_strict("blkio", "blkio.leaf_weight", blk["leafWeight"])
        for key, fname in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                           ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                           ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                           ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for dev in blk.get(key) or []:
                self._set_strict("blkio", fname, f"{dev['major']}:{dev['minor']} {dev['rate']}")
        for hp in res.get("hugepageLimits") or []:
            self._set_strict("hugetlb", f"hugetlb.{hp['pageSize']}.limit_in_bytes", hp["limit"])
        net = res.get("network") or {}
        if net.get("classID") is not None:
            self._set_strict("net_cls", "net_cls.classid", net["classID"])
        for prio in net.get("priorities") or []:
            self._set_strict("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}")

    def _apply_devices(self, rules: list[dict]) -> None:
        d = self.dir_for("devices")
        for rule in rules + DEFAULT_ALLOWED_DEVICES:
            typ = rule.get("type") or "a"
            if typ == "p":
                continue  # fifos are not device nodes: the devices controller has no rule for them
            if typ == "u":
                typ = "c"
            major = rule.get("major")
            minor = rule.get("minor")
            access = rule.get("access") or "rwm"
            if typ == "a" and major is None and minor is None:
                line = "a"
            else:
                line = f"{typ} {'*' if major is None or major < 0 else major}:{'*' if minor is None or minor < 0 else minor} {access}"
            write(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), line)

    # -- reporting -----------------------------------------------------------------------

    def _oom_text(self) -> str | None:
        d = self.dir_for("memory")
        return None if d is None else read(os.path.join(d, "memory.oom_control"))

    def _memory_cpu_stats(self) -> tuple[dict, dict]:
        num, rd = self._num, self._rd
        memory = {"usage": num(rd("memory", "memory.usage_in_bytes")), "limit": num(rd("memory", "memory.limit_in_bytes")),
                  "max_usage": num(rd("memory", "memory.max_usage_in_bytes"))}
        return memory, {"usage_ns": num(rd("cpuacct", "cpuacct.usage"))}
