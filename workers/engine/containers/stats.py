"""A running container's resource use, read from its cgroups (v1, v2 or hybrid) and its network namespace.

Hosts differ: a v1 host has one hierarchy per controller, a v2 host one unified tree, a hybrid host v1
controllers beside an (often empty) unified tree. Each figure is read from the v1 controller's file when that
controller is mounted, else from the unified tree, for the cgroup the container's init is in (/proc/<pid>/cgroup
as the host sees it)."""

from __future__ import annotations

import os
import time

_UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge number


def cgroup_mounts() -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy, and "" -> the unified (v2) mount."""
    out: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if not rfields:
                continue
            mp = fields[4].replace("\\040", " ")
            if rfields[0] == "cgroup2":
                out.setdefault("", mp)
            elif rfields[0] == "cgroup":
                for opt in rfields[2].split(","):
                    if opt in ("cpu", "cpuacct", "memory", "pids", "blkio", "cpuset", "freezer", "devices"):
                        out.setdefault(opt, mp)
    return out


def cgroup_dirs(pid: int, mounts: dict[str, str] | None = None) -> dict[str, str]:
    """controller -> the directory of the cgroup `pid` is in ("" for the unified tree)."""
    mounts = cgroup_mounts() if mounts is None else mounts
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for ctl in controllers.split(",") if controllers else [""]:
                if ctl in mounts:
                    out[ctl] = os.path.join(mounts[ctl], path.lstrip("/"))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def cpu_ns(dirs: dict[str, str]) -> int | None:
    if "cpuacct" in dirs:
        v = _int(os.path.join(dirs["cpuacct"], "cpuacct.usage"))
        if v is not None:
            return v
    if "" in dirs:
        usec = _keyed(_read(os.path.join(dirs[""], "cpu.stat"))).get("usage_usec")
        if usec is not None:
            return usec * 1000
    return None


def memory(dirs: dict[str, str]) -> tuple[int | None, int | None]:
    """(usage without the reclaimable inactive page cache, as docker shows it; limit or None)."""
    if "memory" in dirs:
        d = dirs["memory"]
        usage = _int(os.path.join(d, "memory.usage_in_bytes"))
        if usage is not None:
            stat = _keyed(_read(os.path.join(d, "memory.stat")))
            usage -= min(usage, stat.get("total_inactive_file", stat.get("inactive_file", 0)))
            limit = _int(os.path.join(d, "memory.limit_in_bytes"))
            return usage, limit if limit is not None and limit < _UNLIMITED else None
    if "" in dirs:
        d = dirs[""]
        usage = _int(os.path.join(d, "memory.current"))
        if usage is not None:
            usage -= min(usage, _keyed(_read(os.path.join(d, "memory.stat"))).get("inactive_file", 0))
            return usage, _int(os.path.join(d, "memory.max"))
    return None, None


def pids(dirs: dict[str, str]) -> tuple[int | None, int | None]:
    for key in ("pids", ""):
        if key in dirs:
            cur = _int(os.path.join(dirs[key], "pids.current"))
            if cur is not None:
                return cur, _int(os.path.join(dirs[key], "pids.max"))
    return None, None


def block_io(dirs: dict[str, str]) -> tuple[int, int]:
    """(bytes read, bytes written) by the cgroup's processes from block devices."""
    if "blkio" in dirs:
        for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive",
                     "blkio.throttle.io_service_bytes"):
            text = _read(os.path.join(dirs["blkio"], name))
            if text is None:
                continue
            r = w = 0
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == "Read":
                    r += int(parts[2])
                elif len(parts) == 3 and parts[1] == "Write":
                    w += int(parts[2])
            return r, w
    if "" in dirs:
        r = w = 0
        for line in (_read(os.path.join(dirs[""], "io.stat")) or "").splitlines():
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes":
                    r += int(v)
                elif k == "wbytes":
                    w += int(v)
        return r, w
    return 0, 0


def net_io(pid: int) -> tuple[int, int]:
    """(bytes received, sent) on the interfaces of `pid`'s network namespace, loopback excluded."""
    rx = tx = 0
    for line in (_read(f"/proc/{pid}/net/dev") or "").splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        f = rest.split()
        if len(f) >= 9:
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def sample(pid: int, dirs: dict[str, str] | None = None) -> dict:
    """One reading of the container whose init is `pid` (cumulative counters; see cpu_percent); `dirs`: its
    cgroup_dirs() when the caller knows them already."""
    dirs = cgroup_dirs(pid) if dirs is None else dirs
    mem, mem_limit = memory(dirs)
    npids, pids_limit = pids(dirs)
    blk_r, blk_w = block_io(dirs)
    net_rx, net_tx = net_io(pid)
    return {"time": time.time(), "mono_ns": time.monotonic_ns(), "cpu_ns": cpu_ns(dirs), "memory": mem,
            "memory_limit": mem_limit, "pids": npids, "pids_limit": pids_limit, "net_rx": net_rx, "net_tx": net_tx,
            "block_read": blk_r, "block_write": blk_w}


def cpu_percent(before: dict, after: dict) -> float | None:
    """CPU use between two samples, in % of one CPU (docker's figure: 200 is two CPUs busy)."""
    if before.get("cpu_ns") is None or after.get("cpu_ns") is None:
        return None
    wall = after["mono_ns"] - before["mono_ns"]
    if wall <= 0:
        return None
    return round(max(0, after["cpu_ns"] - before["cpu_ns"]) * 100.0 / wall, 2)


def with_rates(before: dict | None, after: dict) -> dict:
    """`after` with cpu_percent (None on a first sample) and the host's memory when the cgroup has no limit."""
    out = dict(after)
    out["cpu_percent"] = cpu_percent(before, after) if before else None
    if out.get("memory_limit") is None:
        out["memory_limit"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if out.get("memory") is not None and out["memory_limit"]:
        out["memory_percent"] = round(out["memory"] * 100.0 / out["memory_limit"], 2)
    return out
