"""Berth's default seccomp profile: its shape, and what it does to real processes in containers
under runc and under Berth's runtime. Containers here get EVERY capability, so a refusal can only
come from the filter; a control run without the filter shows the same probes succeed."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.tools import host_tool
from workers.engine.runtime import command as runtime_command
from workers.engine.runtime.caps import CAPS, last_cap
from workers.engine.runtime.seccomp_profile import (
    ALLOWED_SYSCALLS,
    ENOSYS_SYSCALLS,
    REFUSED_SYSCALLS,
    default_profile,
)

REPO = Path(__file__).resolve().parents[3]

MUST_REFUSE = ["mount", "umount2", "kexec_load", "kexec_file_load", "init_module", "finit_module",
               "delete_module", "bpf", "keyctl", "add_key", "request_key", "ptrace", "setns",
               "clock_settime", "settimeofday", "adjtimex", "reboot", "swapon", "swapoff", "pivot_root",
               "open_by_handle_at", "perf_event_open", "userfaultfd", "io_uring_setup", "clone3", "unshare",
               "clone"]


# ---- the profile itself -----------------------------------------------------------------


def test_profile_is_default_deny_eperm_for_both_arch_families():
    p = default_profile()
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == errno.EPERM
    assert default_profile("x86_64")["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile("aarch64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    unconditional = {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
                     for n in r["names"]}
    for name in MUST_REFUSE:
        assert name not in unconditional, name
    assert not set(REFUSED_SYSCALLS) & set(ALLOWED_SYSCALLS)
    enosys = [r for r in p["syscalls"] if r.get("errnoRet") == errno.ENOSYS]
    assert enosys and set(enosys[0]["names"]) == set(ENOSYS_SYSCALLS) and "clone3" in ENOSYS_SYSCALLS


def test_clone_and_unshare_only_without_namespace_flags():
    p = default_profile()
    for name in ("clone", "unshare"):
        rules = [r for r in p["syscalls"] if name in r["names"]]
        assert len(rules) == 1 and rules[0]["action"] == "SCMP_ACT_ALLOW"
        (arg,) = rules[0]["args"]
        assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["valueTwo"] == 0
        assert arg["value"] & 0x10000000 and arg["value"] & 0x20000 and arg["value"] & 0x40000000


def test_every_name_is_known_to_libseccomp():
    import pyseccomp

    names = {n for r in default_profile()["syscalls"] for n in r["names"]} | set(REFUSED_SYSCALLS)
    unknown = sorted(n for n in names if pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, n) < 0
                     and pyseccomp.resolve_syscall(pyseccomp.Arch.AARCH64, n) < 0
                     and pyseccomp.resolve_syscall(pyseccomp.Arch.X86, n) < 0
                     and pyseccomp.resolve_syscall(pyseccomp.Arch.ARM, n) < 0)
    assert unknown == []


# ---- real containers ----------------------------------------------------------------------


def _all_caps() -> list[str]:
    """Every capability this test process may hand on (its bounding set)."""
    bnd = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("CapBnd:")).split()[1], 16)
    return ["CAP_" + n for i, n in enumerate(CAPS[: last_cap() + 1]) if bnd >> i & 1]


class Runner:
    def __init__(self, kind: str, root: Path):
        self.kind = kind
        self.root = root
        self.ids: list[str] = []

    @property
    def cmd(self) -> list[str]:
        if self.kind == "runc":
            return [host_tool("runc"), "--root", str(self.root)]
        return [*runtime_command(), "--root", str(self.root)]  # -S: pyseccomp through site, added on demand

    def run(self, bundle) -> subprocess.CompletedProcess:
        cid = f"sc-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        return subprocess.run([*self.cmd, "run", "--bundle", str(bundle.path), cid], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run([*self.cmd, "delete", "--force", cid], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(params=["runc", "berth"])
def runner(request, tmp_path):
    if request.param == "runc":
        host_tool("runc")  # skip (saying why) before making anything
    r = Runner(request.param, tmp_path / "rt")
    try:
        yield r
    finally:
        r.cleanup()


def _privileged(bundle, seccomp: bool = True):
    def edit(c):
        caps = _all_caps()
        c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        c["process"]["terminal"] = False
        c["linux"].pop("seccomp", None)
        if seccomp:
            c["linux"]["seccomp"] = default_profile()
    return bundle.edit(edit)


BUSYBOX_PROBE = r"""
set +e
ip link set lo up  # runc brings loopback up itself; not every runtime does
echo ORDINARY
ls / >/dev/null && echo ls-ok
cat /etc/hostname >/dev/null && echo cat-ok
sh -c 'exit 4'; echo sub=$?
mkdir -p /dev/shm/www && echo hello-web > /dev/shm/www/index.html
httpd -p 127.0.0.1:8080 -h /dev/shm/www
wget -q -O- http://127.0.0.1:8080/index.html
echo REFUSED
unshare -U true 2>&1; echo unshare-user=$?
unshare -m true 2>&1; echo unshare-mnt=$?
unshare -n true 2>&1; echo unshare-net=$?
mount -t tmpfs t /tmp 2>&1; echo mount=$?
nsenter -t 1 -m true 2>&1; echo nsenter=$?
date -s 2001-01-01 2>&1 >/dev/null
true
"""


def test_busybox_ordinary_programs_run_and_escapes_fail_with_eperm(runner, bundle):
    b = _privileged(bundle(["sh", "-c", BUSYBOX_PROBE], overlay=False))
    out = runner.run(b).stdout
    ordinary, refused = out.split("REFUSED")
    assert "ls-ok" in ordinary and "cat-ok" in ordinary and "sub=4" in ordinary
    assert "hello-web" in ordinary  # a web server and a client over loopback
    for probe in ("unshare-user", "unshare-mnt", "unshare-net", "mount", "nsenter"):
        assert f"{probe}=0" not in refused, probe
    assert refused.count("Operation not permitted") >= 4, refused  # unshare x3, nsenter, date
    assert "can't set date: Operation not permitted" in refused


def test_control_without_the_filter_the_same_escapes_succeed(runner, bundle):
    """Proves the test above can fail: with every capability and no filter, they work."""
    b = _privileged(bundle(["sh", "-c", BUSYBOX_PROBE.replace("date -s", "echo skip")], overlay=False),
                    seccomp=False)
    refused = runner.run(b).stdout.split("REFUSED")[1]
    assert "unshare-user=0" in refused and "unshare-mnt=0" in refused and "mount=0" in refused


PY_PROBE = r"""
import ctypes, errno, hashlib, json, os, platform, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": dict(keyctl=250, add_key=248, ptrace=101, clock_settime=227, reboot=169, mount=165,
                     bpf=321, init_module=175, perf_event_open=298, userfaultfd=323, kexec_load=246,
                     unshare=272),
      "aarch64": dict(keyctl=219, add_key=217, ptrace=117, clock_settime=112, reboot=142, mount=40,
                      bpf=280, init_module=105, perf_event_open=241, userfaultfd=282, kexec_load=104,
                      unshare=97)}[platform.machine()]
def sc(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(NR[name], *args)
    return 0 if r != -1 else ctypes.get_errno()
res = {}
subprocess.run(["/bin/busybox", "ip", "link", "set", "lo", "up"])  # runc brings lo up itself; not every runtime does
# Ordinary work: threads (clone, via clone3's ENOSYS fallback), a child process, sockets, hashing, files.
box = []
t = threading.Thread(target=lambda: box.append(hashlib.sha256(b"x" * 100000).hexdigest()[:8])); t.start(); t.join()
res["thread"] = box[0]
res["child"] = subprocess.run(["/bin/sh", "-c", "echo kid"], capture_output=True, text=True).stdout.strip()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept(); cli.sendall(b"ping")
res["tcp"] = conn.recv(4).decode()
with open("/dev/shm/f", "w") as f: f.write("data")
res["file"] = open("/dev/shm/f").read()
res["listdir"] = "usr" in os.listdir("/")
# What a container must not do (safe arguments: if allowed they fail with EFAULT/EINVAL, not EPERM). They run in
# a child: where the kernel allows PTRACE_TRACEME (the control, without the filter), the tracer is then this
# process, which waits for it, and not the runtime that started pid 1; a signal the runtime forwards to a traced
# pid 1 stops it in a ptrace stop nobody ends, and the run never returns.
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.close(r)
        bad = {}
        bad["keyctl"] = sc("keyctl", 0, ctypes.c_long(-3), 0)          # KEYCTL_GET_KEYRING_ID, session keyring
        bad["add_key"] = sc("add_key", None, None, None, 0, 0)
        bad["ptrace"] = sc("ptrace", 0, 0, 0, 0)                        # PTRACE_TRACEME
        bad["clock_settime"] = sc("clock_settime", 0, None)           # NULL timespec
        bad["reboot"] = sc("reboot", 0, 0, 0, None)                    # bad magic
        bad["mount"] = sc("mount", None, None, None, 0, None)
        bad["bpf"] = sc("bpf", 5, None, 0)
        bad["init_module"] = sc("init_module", None, 0, None)
        bad["kexec_load"] = sc("kexec_load", 0, 0, None, 0)
        bad["perf_event_open"] = sc("perf_event_open", None, 0, -1, -1, 0)
        bad["userfaultfd"] = sc("userfaultfd", 0)
        bad["unshare_user"] = sc("unshare", 0x10000000)
        os.write(w, json.dumps(bad).encode())
    finally:
        os._exit(0)  # never on into the parent's code, even after an error (the parent then reads no JSON)
os.close(w)
while True:
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        break
    libc.ptrace(7, pid, None, None)  # PTRACE_CONT: a traced child stopped by a signal goes on, without it
res.update(json.loads(os.read(r, 65536)))
print(json.dumps(res))
"""

DANGEROUS = ["keyctl", "add_key", "ptrace", "clock_settime", "reboot", "mount", "bpf", "init_module",
             "kexec_load", "perf_event_open", "userfaultfd", "unshare_user"]


def _python_bundle(bundle):
    b = bundle(["/usr/bin/python3", "-c", PY_PROBE], overlay=False)
    for name in ("lib", "lib64"):
        host = Path("/") / name
        target = b.rootfs / name
        if host.is_symlink():
            target.symlink_to(os.readlink(host))
        else:
            target.mkdir(exist_ok=True)
            b.config["mounts"].append({"destination": f"/{name}", "type": "bind", "source": str(host),
                                       "options": ["rbind", "ro"]})
    # The host's /usr (python3 and its libraries), read-only; nothing else from the host.
    b.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]})
    b.save()
    return b


def test_python_runs_and_dangerous_syscalls_get_eperm(runner, bundle):
    b = _privileged(_python_bundle(bundle))
    proc = runner.run(b)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["thread"] and res["child"] == "kid" and res["tcp"] == "ping" and res["file"] == "data"
    assert res["listdir"] is True
    assert {k: res[k] for k in DANGEROUS} == {k: errno.EPERM for k in DANGEROUS}


@pytest.mark.parametrize("runner", ["runc"], indirect=True)  # the control needs only one runtime
def test_python_control_without_the_filter(runner, bundle):
    proc = runner.run(_privileged(_python_bundle(bundle), seccomp=False))
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    # With every capability and no filter, these are not refused: the EPERMs above come from the profile.
    assert res["keyctl"] != errno.EPERM and res["ptrace"] == 0 and res["clock_settime"] == errno.EFAULT
    assert res["reboot"] == errno.EINVAL and res["unshare_user"] == 0
