"""What the host mounts: its cgroup hierarchies, its mode (the engine's one cgroup-version detector),
our own cgroup in each, and how an OCI cgroupsPath maps to a path in them."""

from __future__ import annotations

import os

from .files import write

UNIFIED = "unified"
MOUNTINFO = "/proc/self/mountinfo"


# Set by `keep_hierarchies()` in a long-lived process whose forks start containers (the monitor): each
# create read and parsed the whole mount table up to three times, and with 1,000 containers running it has
# 4,000+ lines (their overlays and network namespaces). The host's cgroup mounts do not change under it.
_kept: list[tuple[str, str, str]] | None = None


def keep_hierarchies() -> None:
    """Read this process's cgroup hierarchies once; its later calls and its forks use what was read."""
    global _kept
    _kept = None
    _kept = hierarchies()


def hierarchies(mountinfo: str = MOUNTINFO) -> list[tuple[str, str, str]]:
    """Mounted cgroup hierarchies as (key, mountpoint, mount root); key is the controller list
    ("cpu", "cpu,cpuacct", "name=systemd") or "unified" for cgroup2."""
    if _kept is not None and mountinfo == MOUNTINFO:
        return list(_kept)
    out: dict[str, tuple[str, str, str]] = {}
    with open(mountinfo) as f:
        for line in f:
            if " - cgroup" not in line:  # most of a busy host's mount table: skip it unsplit
                continue
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, _src, sopts = (post.split() + ["", "", ""])[:3]
            if fstype == "cgroup2":
                out.setdefault(UNIFIED, (UNIFIED, fields[4], fields[3]))
            elif fstype == "cgroup":
                key = ",".join(o for o in sopts.split(",") if o not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children") and not o.startswith("release_agent"))
                out.setdefault(key, (key, fields[4], fields[3]))
    return list(out.values())


def host_mode(mountinfo: str = MOUNTINFO) -> str:
    """'v1', 'v2' or 'hybrid' (v1 controllers plus a cgroup2 hierarchy beside them)."""
    keys = {h[0] for h in hierarchies(mountinfo)}
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
            write(os.path.join(mnt, path[len(root):].lstrip("/"), "cgroup.procs"), os.getpid())
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
