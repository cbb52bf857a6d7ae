"""Differential tests: the same bundle under runc and under Berth's runtime must show the
same things to the process inside (runc from Debian's package, its own temporary --root)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.engine.conftest import cleanup_cgroup
from tests.tools import find_tool, host_tool

pytestmark = pytest.mark.root

RUNC = find_tool("runc")

PROBES = {
    "id": "id",
    "hostname": "hostname",
    "status": "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
    "rootdir": "ls /",
    "mounts": "awk '{print $2, $3}' /proc/self/mounts | sort",
    "ulimits": "ulimit -a",
    "init": "cat /proc/1/cmdline | tr '\\0' ' '; echo",
    "netdevs": "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1",
    "dev": "ls -l /dev | awk '{print $1, $5, $6, $NF}'",
    "pid": "echo $$; cat /proc/self/stat | cut -d' ' -f2-4",
    "cwd_umask": "pwd; umask",
    "cgroup": "cat /proc/self/cgroup | cut -d: -f2,3",
    "env": "env | grep -v '^_=\\|^PWD=\\|^SHLVL=' | sort",
    "refused": "unshare -U true 2>/dev/null; echo unshare=$?; mkdir /tmp/d && rmdir /tmp/d && echo mkdir=ok; true",
}


def _script() -> str:
    return "; ".join(f"echo '## {name}'; {cmd} 2>&1" for name, cmd in PROBES.items())


def _sections(out: str) -> dict[str, str]:
    res: dict[str, str] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("## "):
            cur = line[3:]
            res[cur] = ""
        elif cur:
            res[cur] += line + "\n"
    return res


@pytest.fixture
def runc_root(tmp_path):
    host_tool("runc")
    root = tmp_path / "runc-root"
    ids: list[str] = []
    yield root, ids
    for cid in ids:
        subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True, timeout=30)
        cleanup_cgroup(f"/berth/{cid}")


def _run_runc(root, ids, b) -> str:
    cid = f"tdiff-runc-{uuid.uuid4().hex[:8]}"
    ids.append(cid)
    p = subprocess.run([RUNC, "--root", str(root), "run", "--bundle", str(b.path), cid],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("variant", ["default", "readonly-user-caps", "default-seccomp-profile"])
def test_same_bundle_same_view_as_runc(runtime, bundle, runc_root, variant):
    b = bundle(["sh", "-c", _script()], overlay=False)

    def edit(c):
        c["linux"]["cgroupsPath"] = "/berth/differential-" + uuid.uuid4().hex[:8]
        if variant == "readonly-user-caps":
            caps = ["CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"]
            c["root"]["readonly"] = True
            c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}
            c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
            c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512},
                                       {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
            c["process"]["noNewPrivileges"] = False
            c["process"]["cwd"] = "/tmp"
        if variant == "default-seccomp-profile":
            from workers.engine.runtime.seccomp_profile import default_profile

            c["linux"]["seccomp"] = default_profile()

    b.edit(edit)
    root, ids = runc_root
    theirs = _sections(_run_runc(root, ids, b))
    cid = runtime.new_id("diff")
    runtime.cgroups.append(b.config["linux"]["cgroupsPath"])
    code, out, err = runtime.run_capture(cid, b)
    assert code == 0, err
    ours = _sections(out)
    assert set(ours) == set(PROBES)
    diffs = {k: (theirs.get(k), ours.get(k)) for k in PROBES if theirs.get(k) != ours.get(k)}
    assert not diffs, "\n".join(f"[{k}]\nrunc:\n{a}berth:\n{b_}" for k, (a, b_) in diffs.items())
