"""`top`: a running container's processes, as the container sees them (pids in its namespace) and as the
host does, found through its cgroup (exec'd processes are in it too)."""

from __future__ import annotations

import os

from .stats import cgroup_dirs

TITLES = ["PID", "PPID", "USER", "TIME", "CMD", "HOST_PID", "HOST_PPID"]


def _procs_in(d: str) -> list[int]:
    out: list[int] = []
    for dirpath, _dirs, files in os.walk(d):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                continue
    return out


def cgroup_pids(init_pid: int) -> list[int]:
    """Host pids of every process in the container's cgroup (the pids, memory or unified hierarchy)."""
    dirs = cgroup_dirs(init_pid)
    for key in ("pids", "memory", "cpuacct", ""):
        if key in dirs and os.path.isdir(dirs[key]):
            found = _procs_in(dirs[key])
            if found:
                return sorted(set(found))
    return [init_pid]


def _status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _cputime(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    secs = (int(fields[11]) + int(fields[12])) // os.sysconf("SC_CLK_TCK")
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"


def _cmd(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        raw = f.read()
    if raw:
        return " ".join(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))
    return "[" + _status(pid).get("Name", "?") + "]"


def processes(init_pid: int, users: dict[int, str] | None = None) -> list[dict]:
    """One dict per process: pid/ppid in the container's pid namespace, host_pid/host_ppid, user, time, cmd."""
    users = users or {}
    ns_of: dict[int, int] = {}
    rows = []
    for hp in cgroup_pids(init_pid):
        try:
            st = _status(hp)
            nspid = [int(x) for x in st.get("NSpid", str(hp)).split()]
            row = {"host_pid": hp, "host_ppid": int(st.get("PPid", "0")), "pid": nspid[-1],
                   "uid": int(st.get("Uid", "0").split()[0]), "time": _cputime(hp), "cmd": _cmd(hp)}
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        ns_of[hp] = row["pid"]
        row["user"] = users.get(row["uid"], str(row["uid"]))
        rows.append(row)
    for row in rows:
        row["ppid"] = ns_of.get(row["host_ppid"], 0)  # a parent outside the container is 0, as inside
    return sorted(rows, key=lambda r: r["pid"])
