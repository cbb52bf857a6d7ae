"""What the monitor reads from /proc and the cgroup files about its containers' processes."""

from __future__ import annotations

import os

PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def exit_code_of(status: int) -> int:
    """Shell convention: the code, or 128 + the signal that killed it."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def proc_parent(pid: int) -> int | None:
    """Field 4 of /proc/<pid>/stat: the parent's pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[1])


def proc_cgroups(pid: int) -> dict[str, str]:
    """controller -> cgroup path of a process ('' for the unified v2 hierarchy)."""
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    out[c] = path
    except OSError:
        pass
    return out


def cgroup_oom_kills(cgroups: dict[str, str]) -> int | None:
    """The kernel's oom_kill counter for a container's memory cgroup (v1 or v2), or None."""
    candidates = []
    if "memory" in cgroups:
        candidates.append(f"/sys/fs/cgroup/memory{cgroups['memory']}/memory.oom_control")
    if "" in cgroups:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            candidates.append(f"{base}{cgroups['']}/memory.events")
    for path in candidates:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return None
