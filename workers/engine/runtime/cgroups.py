"""cgroups for containers on v1, v2 and hybrid hosts (v1 controllers + a cgroup2 beside them).

A container's cgroup is one directory per mounted hierarchy, all at the same path
(`linux.cgroupsPath`, default /berth/<id>). The list of directories is stored in the
container state so that `delete` removes exactly what `create` made.
"""

from __future__ import annotations

import errno
import os
import signal
import time

UNIFIED = "unified"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise OSError(e.errno, f"cgroup: writing {value!r} to {path}: {os.strerror(e.errno)}") from None
    finally:
        os.close(fd)


def hierarchies() -> list[tuple[str, str, str]]:
    """Mounted cgroup hierarchies as (key, mountpoint, mount root); key is the controller list
    ("cpu", "cpu,cpuacct", "name=systemd") or "unified" for cgroup2."""
    out: dict[str, tuple[str, str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, _src, sopts = (post.split() + ["", "", ""])[:3]
            if fstype == "cgroup2":
                out.setdefault(UNIFIED, (UNIFIED, fields[4], fields[3]))
            elif fstype == "cgroup":
                key = ",".join(o for o in sopts.split(",") if o not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children") and not o.startswith("release_agent"))
                out.setdefault(key, (key, fields[4], fields[3]))
    return list(out.values())


def host_mode() -> str:
    """'v1', 'v2' or 'hybrid'."""
    keys = {h[0] for h in hierarchies()}
    if keys == {UNIFIED}:
        return "v2"
    return "hybrid" if UNIFIED in keys else "v1"


def _own_cgroup() -> dict[str, str]:
    """Our own cgroup path per hierarchy key (from /proc/self/cgroup)."""
    res = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            res[UNIFIED if hid == "0" else ctrls] = path
    return res


def warm_up_migration() -> None:
    """Move ourselves into the cgroup we are already in (a no-op) to start the RCU grace
    period every cgroup migration waits for (cgroup_threadgroup_rwsem): run on a thread at
    the start of `create`, it overlaps that wait (10-20 ms here) with the fork and the
    namespace setup, and the container's own migration right after finds it done."""
    try:
        own = _own_cgroup()
        for key, mnt, root in hierarchies():
            path = own.get(key)
            if path is None or not path.startswith(root):
                continue
            _write(os.path.join(mnt, path[len(root):].lstrip("/"), "cgroup.procs"), os.getpid())
            return
    except OSError:
        pass


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """OCI cgroupsPath -> absolute cgroup path. 'slice:prefix:name' (systemd form) maps to
    /slice/prefix-name.scope; a relative path is taken relative to the hierarchy root."""
    if not cgroups_path:
        return f"/berth/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        slice_, prefix, name = (cgroups_path.split(":") + ["", ""])[:3]
        return "/" + "/".join(p for p in (slice_ or "system.slice", f"{prefix}-{name}.scope" if prefix else f"{name}.scope") if p)
    return os.path.normpath("/" + cgroups_path.lstrip("/"))


class Cgroup:
    """One container's cgroup: `dirs` maps hierarchy key -> directory."""

    def __init__(self, path: str, dirs: dict[str, str]):
        self.path = path
        self.dirs = dirs

    @classmethod
    def for_path(cls, path: str) -> Cgroup:
        dirs = {}
        for key, mnt, root in hierarchies():
            rel = path
            if root != "/" and rel.startswith(root):  # we run inside a cgroup namespace/bind mount
                rel = rel[len(root):] or "/"
            dirs[key] = os.path.join(mnt, rel.lstrip("/")).rstrip("/")
        return cls(path, dirs)

    def to_json(self) -> dict:
        return {"path": self.path, "dirs": self.dirs}

    @classmethod
    def from_json(cls, d: dict) -> Cgroup:
        return cls(d["path"], d["dirs"])

    @property
    def v2(self) -> bool:
        return list(self.dirs) == [UNIFIED]

    def dir_for(self, controller: str) -> str | None:
        if self.v2:
            return self.dirs[UNIFIED]
        for key, d in self.dirs.items():
            if controller in key.split(","):
                return d
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        for key, d in self.dirs.items():
            if key == UNIFIED and self.v2:
                self._enable_v2_controllers(d)
            if "cpuset" in key.split(","):
                self._mkdir_cpuset(d)
            else:
                os.makedirs(d, exist_ok=True)

    @staticmethod
    def _mkdir_cpuset(d: str) -> None:
        # v1 cpuset refuses tasks until cpus and mems are set: inherit them level by level
        parent = os.path.dirname(d)
        if not os.path.isdir(parent):
            Cgroup._mkdir_cpuset(parent)
        if not os.path.isdir(d):
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
        for f in ("cpuset.cpus", "cpuset.mems"):
            p = os.path.join(d, f)
            if os.path.exists(p) and not _read(p).strip():
                _write(p, _read(os.path.join(parent, f)).strip())

    def _enable_v2_controllers(self, d: str) -> None:
        mnt = next(m for k, m, _ in hierarchies() if k == UNIFIED)
        rel = os.path.relpath(d, mnt)
        cur = mnt
        parts = [] if rel == "." else rel.split("/")
        for part in parts:
            avail = _read(os.path.join(cur, "cgroup.controllers")).split()
            want = [c for c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb") if c in avail]
            if want:
                try:
                    _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in want))
                except OSError:
                    pass  # a parent with processes in it cannot delegate; limits then fail loudly
            cur = os.path.join(cur, part)
            os.makedirs(cur, exist_ok=True)

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def join(self, pid: int) -> None:
        for f in self.procs_files():
            _write(f, pid)

    def pids(self) -> list[int]:
        d = self.dir_for("pids") or self.dir_for("freezer") or next(iter(self.dirs.values()))
        found: list[int] = []
        for dirpath, _dirs, _files in os.walk(d):
            try:
                found += [int(x) for x in _read(os.path.join(dirpath, "cgroup.procs")).split()]
            except OSError:
                pass
        return sorted(set(found))

    def signal_all(self, sig: int) -> None:
        frozen = False
        if sig == signal.SIGKILL:
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
        if self.v2:
            d = self.dirs[UNIFIED]
            _write(os.path.join(d, "cgroup.freeze"), "1" if on else "0")
            want = "frozen 1" if on else "frozen 0"
            for _ in range(2000):
                if want in _read(os.path.join(d, "cgroup.events")):
                    return
                time.sleep(0.001)
            return
        d = self.dir_for("freezer")
        if d is None:
            raise OSError(errno.ENOTSUP, "cgroup: no freezer controller on this host")
        f = os.path.join(d, "freezer.state")
        want = "FROZEN" if on else "THAWED"
        for _ in range(2000):
            _write(f, want)
            if _read(f).strip() == want:
                return
            time.sleep(0.001)
        raise OSError(errno.EBUSY, f"cgroup: freezer did not reach {want}")

    def frozen(self) -> bool:
        try:
            if self.v2:
                return "frozen 1" in _read(os.path.join(self.dirs[UNIFIED], "cgroup.events"))
            d = self.dir_for("freezer")
            return d is not None and _read(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except OSError:
            return False

    # -- limits --------------------------------------------------------------------------

    def apply(self, res: dict | None) -> None:
        if not res:
            return
        if self.v2:
            self._apply_v2(res)
        else:
            self._apply_v1(res)

    def _set(self, controller: str, name: str, value, optional: bool = False) -> None:
        d = self.dir_for(controller)
        if d is None:
            if optional:
                return
            raise OSError(errno.ENOTSUP, f"cgroup: controller {controller} is not available on this host")
        p = os.path.join(d, name)
        if optional and not os.path.exists(p):
            return
        _write(p, value)

    def _set_strict(self, controller: str, name: str, value) -> None:
        d = self.dir_for(controller)
        if d is None or not os.path.exists(os.path.join(d, name)):
            raise OSError(errno.ENOTSUP, f"cgroup: cannot set {name}: not supported on this host")
        _write(os.path.join(d, name), value)

    def _apply_v1(self, res: dict) -> None:
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
        if cpu.get("cpus"):
            self._set("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset", "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit") is not None:
            self._set("pids", "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        if "devices" in res and self.dir_for("devices"):
            self._apply_devices_v1(res.get("devices") or [])
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

    def _apply_devices_v1(self, rules: list[dict]) -> None:
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
            _write(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), line)

    def _apply_v2(self, res: dict) -> None:
        mem = res.get("memory") or {}
        if mem.get("limit") is not None:
            lim = mem["limit"]
            self._set("memory", "memory.max", "max" if lim < 0 else lim)
            swap = mem.get("swap")
            if swap is not None:
                self._set("memory", "memory.swap.max", "max" if swap < 0 or lim < 0 else max(swap - lim, 0), optional=True)
        if mem.get("reservation") is not None:
            self._set("memory", "memory.low", mem["reservation"])
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            self._set("cpu", "cpu.weight", 1 + ((cpu["shares"] - 2) * 9999) // 262142)
        if cpu.get("quota") or cpu.get("period"):
            q = cpu.get("quota")
            self._set("cpu", "cpu.max", f"{'max' if not q or q < 0 else q} {cpu.get('period') or 100000}")
        if cpu.get("cpus"):
            self._set("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._set("cpuset", "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit") is not None:
            self._set("pids", "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        for k, v in (res.get("unified") or {}).items():
            _write(os.path.join(self.dirs[UNIFIED], k), v)

    # -- reporting -----------------------------------------------------------------------

    def oom_kills(self) -> int:
        try:
            if self.v2:
                text = _read(os.path.join(self.dirs[UNIFIED], "memory.events"))
            else:
                d = self.dir_for("memory")
                if d is None:
                    return 0
                text = _read(os.path.join(d, "memory.oom_control"))
        except OSError:
            return 0
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def stats(self) -> dict:
        out: dict = {"memory": {}, "cpu": {}, "pids": {}}

        def rd(ctrl: str, name: str) -> str | None:
            d = self.dir_for(ctrl)
            try:
                return _read(os.path.join(d, name)).strip() if d else None
            except OSError:
                return None

        def num(s: str | None) -> int | None:
            return None if s is None or s == "max" else int(s)

        if self.v2:
            out["memory"] = {"usage": num(rd("memory", "memory.current")), "limit": num(rd("memory", "memory.max"))}
            usage = None
            for line in (rd("cpu", "cpu.stat") or "").splitlines():
                if line.startswith("usage_usec "):
                    usage = int(line.split()[1]) * 1000
            out["cpu"] = {"usage_ns": usage}
        else:
            out["memory"] = {"usage": num(rd("memory", "memory.usage_in_bytes")), "limit": num(rd("memory", "memory.limit_in_bytes")),
                             "max_usage": num(rd("memory", "memory.max_usage_in_bytes"))}
            out["cpu"] = {"usage_ns": num(rd("cpuacct", "cpuacct.usage"))}
        out["pids"] = {"current": num(rd("pids", "pids.current")), "limit": num(rd("pids", "pids.max"))}
        out["memory"]["oom_kills"] = self.oom_kills()
        return out


# Devices every container may use (runc adds the same list to the cgroup allowlist).
DEFAULT_ALLOWED_DEVICES = [
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # tun
]
