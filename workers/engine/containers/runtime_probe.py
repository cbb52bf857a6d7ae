"""Which runtimes work on this host: each one runs a tiny container through the seam, once per process.

Probed, never assumed: crun 1.8 refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported"),
runc may be missing, a kernel may lack a namespace. The container is a static busybox bind-mounted into an
empty read-only rootfs, so the probe needs no image; everything it makes is removed by id and path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading

from workers.engine.runtime import errors as rterr

from . import oci

BUSYBOX = "/bin/busybox"  # busybox-static (make installs it)
_cache: dict[str, str | None] = {}
_lock = threading.Lock()


def _bundle(d: str) -> str:
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
        "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")]},
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
    d = tempfile.mkdtemp(prefix="berth-probe-")
    try:
        rt = (oci.BerthRuntime(d + "/state") if isinstance(found, oci.BerthRuntime)
              else oci.CliRuntime(found.name, found.cmd, d + "/state"))
        cid = f"berth-probe-{secrets.token_hex(6)}"
        bundle = _bundle(d)
        # in a child process: the native runtime forks, and the caller may be a threaded worker
        p = subprocess.run([*rt.command(), "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               filter(None, [_project_dir(), os.environ.get("PYTHONPATH")]))})
        if p.returncode != 0:
            lines = p.stderr.decode("utf-8", "replace").strip().splitlines()
            try:
                rt.delete(cid, force=True)
            except rterr.RuntimeError_:
                pass
            return lines[-1][:300] if lines else f"a test container exited {p.returncode}"
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot probe it: {e}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


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
