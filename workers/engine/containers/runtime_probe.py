"""Which runtimes work on this host: each one runs a tiny container through the seam, once per process.

Probed, never assumed: crun 1.8 refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported"),
runc may be missing, a kernel may lack a namespace. The container is a static busybox bind-mounted into an
empty read-only rootfs, so the probe needs no image; everything it makes is removed by id and path.
Its cgroup is /berth/berth-probe-<pid of the prober>-<hex>: a prober killed mid-probe (a worker killed -9)
leaves it behind, and the next probe removes every probe cgroup whose prober is dead, and the prober's
temporary dir ($TMPDIR/berth-probe-<pid>-*) with it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading

from workers.engine.runtime import errors as rterr
from workers.engine.runtime import state as S
from workers.engine.runtime.cgroups import Cgroup, hierarchies

from . import oci

BUSYBOX = "/bin/busybox"  # busybox-static (make installs it)
_cache: dict[str, str | None] = {}
_lock = threading.Lock()


PREFIX = "berth-probe-"


def _cgroup_path(cid: str) -> str:
    return f"/berth/{cid}"


def _bundle(d: str, cid: str) -> str:
    bundle = os.path.join(d, "bundle")
    os.makedirs(os.path.join(bundle, "rootfs"))
    cfg = {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["/busybox", "true"], "cwd": "/", "env": ["PATH=/"],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "berth-probe",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/busybox", "type": "bind", "source": BUSYBOX, "options": ["bind", "ro"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")],
                  "cgroupsPath": _cgroup_path(cid)},
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def _probe(name: str) -> str | None:
    try:
        found = oci.get(name, "/nonexistent")  # only to find the binary: the probe's state root is its own
    except oci.RuntimeUnavailable as e:
        return str(e)
    if not os.path.exists(BUSYBOX):
        return f"cannot probe it: {BUSYBOX} (busybox-static) is missing"
    sweep_stale()
    d = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    cid = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    rt = (oci.BerthRuntime(d + "/state") if isinstance(found, oci.BerthRuntime)
          else oci.CliRuntime(found.name, found.cmd, d + "/state"))
    try:
        bundle = _bundle(d, cid)
        # in a child process: the native runtime forks, and the caller may be a threaded worker
        p = subprocess.run([*rt.command(), "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               filter(None, [_project_dir(), os.environ.get("PYTHONPATH")]))})
        if p.returncode != 0:
            lines = p.stderr.decode("utf-8", "replace").strip().splitlines()
            return lines[-1][:300] if lines else f"a test container exited {p.returncode}"
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot probe it: {e}"
    finally:
        if os.path.isdir(os.path.join(d, "state", cid)):  # the run failed or timed out before deleting it
            try:
                rt.delete(cid, force=True)
            except (rterr.RuntimeError_, OSError):
                pass
        _remove_cgroup(_cgroup_path(cid))
        shutil.rmtree(d, ignore_errors=True)


def _remove_cgroup(path: str) -> None:
    """Kill what is left in a probe's cgroup (an init waiting for a start that never came) and remove it."""
    cg = Cgroup.for_path(path)
    if not any(os.path.isdir(x) for x in cg.dirs.values()):
        return
    try:
        cg.signal_all(signal.SIGKILL)
        cg.destroy()
    except OSError:
        pass


def _prober_dead(name: str) -> bool:
    pid = name[len(PREFIX):].split("-", 1)[0]
    return not pid.isdigit() or not S.alive(int(pid), None)  # no pid: made before probes named their prober


def _sweep_dirs() -> None:
    """Remove the temporary dirs of dead probers (only real dirs this user owns: never a link's target)."""
    tmp = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(PREFIX) and _prober_dead(n)]
    except OSError:
        return
    for name in names:
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            shutil.rmtree(path, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Remove the cgroups and temporary dirs of probes whose prober is dead (killed mid-probe); returns the
    cgroups' names."""
    _sweep_dirs()
    stale: set[str] = set()
    for _key, mnt, _root in hierarchies():
        try:
            names = os.listdir(os.path.join(mnt, "berth"))
        except OSError:
            continue
        for name in names:
            if name.startswith(PREFIX) and _prober_dead(name):
                stale.add(name)
    for name in sorted(stale):
        _remove_cgroup(_cgroup_path(name))
    return sorted(stale)


def _project_dir() -> str:
    from workers.engine.monitor.layout import project_dir

    return str(project_dir())


def problem(name: str) -> str | None:
    """Why runtime `name` does not work here, or None if it does (probed once per process)."""
    with _lock:
        if name not in _cache:
            _cache[name] = _probe(name)
        return _cache[name]


def working(names: tuple[str, ...] = oci.RUNTIMES) -> list[str]:
    return [n for n in names if problem(n) is None]


def problems(names: tuple[str, ...] = oci.RUNTIMES) -> dict[str, str]:
    return {n: p for n in names if (p := problem(n)) is not None}
