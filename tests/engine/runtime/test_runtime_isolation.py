"""Isolation: a real process in a container, asserting what it sees."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.engine.conftest import in_freezer, wchan

pytestmark = pytest.mark.root


def test_pid1_and_only_own_processes(runtime, bundle):
    b = bundle(["sh", "-c", "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"])
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    first, pids = out.splitlines()
    assert first == "1"
    seen = [int(p) for p in pids.split()]
    # sh (1), ls, grep, sort and tr at most: nothing of the host
    assert seen[0] == 1 and len(seen) <= 5 and max(seen) < 20, seen


def test_own_hostname(runtime, bundle):
    b = bundle(["hostname"])
    code, out, _ = runtime.run_capture(runtime.new_id(), b)
    assert code == 0 and out.strip() == "berth-test"
    assert os.uname().nodename != "berth-test"


def test_only_loopback_in_network_namespace(runtime, bundle):
    b = bundle(["sh", "-c", "ls /sys/class/net; echo --; tail -n +3 /proc/net/dev | cut -d: -f1"])
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    sysfs, procnet = out.split("--\n")
    assert sysfs.split() == ["lo"]
    assert [x.strip() for x in procnet.split()] == ["lo"]


def test_cannot_see_or_climb_to_host_files(runtime, bundle, tmp_path, busybox_rootfs):
    secret = tmp_path / "host-secret"
    secret.write_text("do not read")
    b = bundle(["sh", "-c",
                f"cat {secret} || echo no-abs; cd /; cd ../../../..; cat .{secret} || echo no-dotdot; "
                f"cat /proc/1/root{secret} || echo no-procroot; cat /escape{secret} || echo no-symlink; "
                "ls / | tr '\\n' ' '"])
    os.symlink("../../../../../../..", b.upper / "escape")  # a symlink pointing far above /
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    assert "do not read" not in out
    for marker in ("no-abs", "no-dotdot", "no-procroot", "no-symlink"):
        assert marker in out
    listing = out.splitlines()[-1].split()
    assert set(listing) == set(os.listdir(busybox_rootfs)) | {"escape"}


def test_memory_limit_oom_kills_and_is_reported(runtime, bundle):
    b = bundle(["sh", "-c", "echo start; exec dd if=/dev/zero of=/dev/null bs=200M count=1"])
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(
        memory={"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}))
    cid = runtime.new_id("oom")
    r, w = os.pipe()
    runtime.create(cid, str(b.path), stdout=w, stderr=w)
    os.close(w)
    runtime.start(cid)
    runtime.wait_stopped(cid)
    with os.fdopen(r) as f:
        out = f.read()
    assert "start" in out and "records out" not in out
    assert runtime.oom_killed(cid) is True
    assert runtime.state(cid)["oomKilled"] is True
    runtime.delete(cid)


def test_no_oom_reported_without_pressure(runtime, bundle):
    b = bundle(["true"])
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(memory={"limit": 64 * 1024 * 1024}))
    cid = runtime.new_id()
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    runtime.wait_stopped(cid)
    assert runtime.oom_killed(cid) is False
    runtime.delete(cid)


def test_pids_limit_stops_fork_bomb(runtime, bundle, tmp_path):
    b = bundle(["sleep", "1000"])
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(pids={"limit": 16}))
    cid = runtime.new_id("pids")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    # a bounded bomb (60 forks) run through exec, which joins the container's cgroup
    w = os.open(tmp_path / "bomb.out", os.O_WRONLY | os.O_CREAT, 0o600)  # a file: the sleeps keep it open
    code = runtime.exec(cid, ["sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done"],
                        stdout=w, stderr=w)
    os.close(w)
    out = (tmp_path / "bomb.out").read_text()
    assert code != 0 and "can't fork" in out
    pids = runtime.ps(cid)
    assert 10 <= len(pids) <= 16
    assert runtime.stats(cid)["pids"]["current"] <= 16
    child = os.fork()  # the host still forks fine
    if child == 0:
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    runtime.delete(cid, force=True)
    from workers.engine.runtime.state import proc_start_time

    for p in pids:  # gone, or a zombie its (host) parent has not reaped yet
        st = proc_start_time(p)
        assert st is None or st[0] == "Z"


def test_cap_eff_equals_configured_set(runtime, bundle):
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    b = bundle(["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status"])
    b.edit(lambda c: c["process"].update(capabilities={"bounding": caps, "effective": caps, "permitted": caps}))
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    vals = dict(line.split(":\t") for line in out.splitlines())
    want = f"{(1 << 0) | (1 << 5) | (1 << 10):016x}"
    assert vals["CapEff"] == want and vals["CapPrm"] == want and vals["CapBnd"] == want
    assert vals["CapAmb"] == "0" * 16


def test_non_root_user_gets_no_caps_and_its_ids(runtime, bundle):
    b = bundle(["sh", "-c", "id -u; id -g; id -G; grep CapEff /proc/self/status; umask"])
    b.edit(lambda c: c["process"].update(user={"uid": 1000, "gid": 1001, "additionalGids": [2000], "umask": 0o077}))
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    lines = out.split("\n")
    assert lines[0] == "1000" and lines[1] == "1001" and lines[2].split() == ["1001", "2000"]
    assert lines[3].split()[1] == "0" * 16
    assert lines[4] == "0077"


def test_masked_paths_are_empty(runtime, bundle):
    assert os.path.getsize("/proc/timer_list") == 0 and open("/proc/timer_list").read()  # the host's is not empty
    b = bundle(["sh", "-c", "cat /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l; cat /proc/keys | wc -c"])
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    assert out.split() == ["0", "0", "0"]


def test_readonly_paths_and_readonly_rootfs(runtime, bundle):
    b = bundle(["sh", "-c", "touch /newfile && echo rootfs-writable; echo 1 > /proc/sys/kernel/domainname "
                            "&& echo procsys-writable; touch /dev/shm/x && echo shm-writable"])
    b.edit(lambda c: c["root"].update(readonly=True))
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert "rootfs-writable" not in out and "procsys-writable" not in out
    assert "shm-writable" in out  # tmpfs mounts stay writable
    assert "Read-only file system" in err
    assert not (b.upper / "newfile").exists()


def test_overlay_rootfs_writes_land_in_upperdir(runtime, bundle, busybox_rootfs):
    b = bundle(["sh", "-c", "echo hi > /newfile; rm /etc/hostname; cat /newfile"])
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    assert out == "hi\n"
    assert (b.upper / "newfile").read_text() == "hi\n"
    assert not (busybox_rootfs / "newfile").exists()
    assert (busybox_rootfs / "etc/hostname").exists()  # the lower dir is untouched (whiteout in upper)
    assert os.path.exists(b.upper / "etc/hostname") and os.stat(b.upper / "etc/hostname").st_rdev == 0


def test_pause_freezes_and_resume_thaws(runtime, bundle):
    b = bundle(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/counter; done"])
    cid = runtime.new_id("pause")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    counter = b.upper / "tmp/counter"

    def read() -> int:
        while True:
            try:
                return int(counter.read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.01)

    first = read()
    while read() == first:
        time.sleep(0.01)
    runtime.pause(cid)
    assert runtime.state(cid)["status"] == "paused"
    frozen = read()
    # Not "the counter did not move for 0.3 s" (that passes wrongly on a busy machine): the kernel says every
    # process of the container sits in the freezer.
    pids = runtime.ps(cid)
    assert pids and all(in_freezer(pid) for pid in pids), {pid: wchan(pid) for pid in pids}
    assert read() == frozen
    runtime.resume(cid)
    assert runtime.state(cid)["status"] == "running"
    deadline = time.monotonic() + 30
    while read() == frozen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read() > frozen
    runtime.delete(cid, force=True)


def test_exec_runs_in_the_same_namespaces(runtime, bundle):
    b = bundle(["sleep", "1000"])
    cid = runtime.new_id("exec")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    init = runtime.state(cid)["pid"]
    names = ["pid", "net", "mnt", "uts", "ipc", "cgroup"]
    r, w = os.pipe()
    code = runtime.exec(cid, ["sh", "-c", "for n in " + " ".join(names) + "; do readlink /proc/self/ns/$n; done; "
                                          "hostname; echo $$; cat /proc/self/cgroup | grep -c /"],
                        stdout=w, stderr=w)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read().splitlines()
    assert code == 0, out
    want = [os.readlink(f"/proc/{init}/ns/{n}") for n in names]
    assert out[: len(names)] == want
    assert out[len(names)] == "berth-test"
    assert int(out[len(names) + 1]) > 1  # a new pid in the container's pid namespace
    assert runtime.exec(cid, ["sh", "-c", "exit 7"]) == 7
    assert init in runtime.ps(cid)
    runtime.delete(cid, force=True)


def test_seccomp_from_config_is_applied(runtime, bundle):
    b = bundle(["sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/x && echo made; echo alive"])
    b.edit(lambda c: c["linux"].update(seccomp={
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    code, out, err = runtime.run_capture(runtime.new_id(), b)
    assert code == 0, err
    assert "Seccomp:\t2" in out and "made" not in out and "alive" in out
    assert "Operation not permitted" in err


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a host pid, None once it is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def _wait_for(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)
    return found


def _orphan_ends(runtime, b, expect: str) -> str:
    """Start `b` (it leaves an orphan `sleep 1000`, then pid 1's process execs `sleep 1001`), wait for the
    orphan to be pid 1's child, SIGKILL it from the host and wait until it is `expect`: "reaped" (gone) or
    "zombie". Returns pid 1's command line."""
    cid = runtime.new_id("init")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    init = runtime.state(cid)["pid"]

    def orphan() -> int:
        for name in os.listdir("/proc"):
            if name.isdigit() and (_stat(int(name)) or ("", 0))[1] == init:
                try:
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        if f.read() == b"sleep\x001000\x00":
                            return int(name)
                except OSError:
                    continue
        return 0

    pid = _wait_for(orphan, "the orphan is adopted by pid 1")
    if expect == "zombie":  # until its exec, pid 1 is the shell, which may reap the orphan in its own wait
        _wait_for(lambda: _cmdline(init) == "sleep 1001 ", "pid 1 execs sleep 1001")
    os.kill(pid, signal.SIGKILL)
    if expect == "reaped":
        _wait_for(lambda: _stat(pid) is None, "pid 1 reaps the orphan")
    else:
        _wait_for(lambda: _stat(pid) == ("Z", init), "the orphan is a zombie of pid 1")
    cmdline = _cmdline(init)
    runtime.delete(cid, force=True)
    return cmdline


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


ORPHAN_MAKER = ["sh", "-c", "(sleep 1000 &); exec sleep 1001"]


@pytest.mark.parametrize("which", ["catatonit", "python"])
def test_init_reaps_zombies_when_asked(runtime, bundle, which, monkeypatch):
    if which == "catatonit" and not os.path.exists("/usr/bin/catatonit"):
        pytest.skip("no catatonit on this host")
    if which == "python":
        monkeypatch.setenv("BERTH_RUNTIME_PYTHON_INIT", "1")
    b = bundle(ORPHAN_MAKER)
    b.edit(lambda c: c.setdefault("annotations", {}).update({"org.berth.init": "1"}))
    cmdline = _orphan_ends(runtime, b, "reaped")
    assert not cmdline.startswith("sleep")
    if which == "catatonit":
        assert cmdline.startswith("/dev/.berth-init")


def test_init_exits_with_its_childs_status(runtime, bundle, monkeypatch):
    monkeypatch.setenv("BERTH_RUNTIME_PYTHON_INIT", "1")
    b = bundle(["sh", "-c", "exit 9"])
    b.edit(lambda c: c.setdefault("annotations", {}).update({"org.berth.init": "1"}))
    assert runtime.run(runtime.new_id(), str(b.path)) == 9


def test_without_init_orphans_stay_zombies(runtime, bundle):
    # the control for the tests above: a pid 1 that does not reap leaves the orphan a zombie
    cmdline = _orphan_ends(runtime, bundle(ORPHAN_MAKER), "zombie")
    assert cmdline.startswith("sleep 1001")


def test_user_namespace_maps_ids(runtime, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /sys/fs/cgroup/pids/pids.max"],
               overlay=False)

    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("sysfs", "mqueue")]
        c["linux"]["resources"] = {"pids": {"limit": 100}}

    b.edit(userns)
    for parent in b.path.parents:  # pytest's tmp dirs are 0700: let the mapped root traverse them
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o001)
    for dirpath, dirnames, filenames in os.walk(b.rootfs):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), 200000, 200000)
    os.lchown(b.rootfs, 200000, 200000)
    code, out, err = runtime.run_capture(runtime.new_id("userns"), b)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0", "200000", "65536"] and lines[1] == ["0", "200000", "65536"]
    assert lines[2] == ["0"]
    assert lines[3] == ["100"]  # its own cgroup, bind-mounted (v1 cannot be mounted in a user namespace)


def test_joins_namespaces_by_path(runtime, bundle):
    a = bundle(["sleep", "1000"])
    first = runtime.new_id("nsa")
    runtime.create(first, str(a.path))
    runtime.start(first)
    pid_a = runtime.state(first)["pid"]
    b = bundle(["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname; readlink /proc/self/ns/mnt"])

    def share(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] in ("network", "uts"):
                ns["path"] = f"/proc/{pid_a}/ns/{'net' if ns['type'] == 'network' else 'uts'}"

    b.edit(share)
    b.edit(lambda c: c.pop("hostname"))
    code, out, err = runtime.run_capture(runtime.new_id("nsb"), b)
    assert code == 0, err
    net, uts, hostname, mnt = out.split()
    assert net == os.readlink(f"/proc/{pid_a}/ns/net") and uts == os.readlink(f"/proc/{pid_a}/ns/uts")
    assert hostname == "berth-test"  # the joined uts namespace's name
    assert mnt != os.readlink(f"/proc/{pid_a}/ns/mnt")  # the others are its own
    runtime.delete(first, force=True)


def test_cpu_and_memory_limits_are_written_and_reported(runtime, bundle):
    from workers.engine.runtime.cgroups import Cgroup

    b = bundle(["sleep", "1000"])
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(
        memory={"limit": 64 << 20, "reservation": 32 << 20},
        cpu={"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        pids={"limit": 50}))
    cid = runtime.new_id("res")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    cg = Cgroup.for_path(f"/berth/{cid}")

    def read(ctrl, name):
        with open(os.path.join(cg.dir_for(ctrl), name)) as f:
            return f.read().strip()

    if cg.v2:
        assert read("memory", "memory.max") == str(64 << 20)
        assert read("cpu", "cpu.max") == "50000 100000"
    else:
        assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
        assert read("memory", "memory.soft_limit_in_bytes") == str(32 << 20)
        assert read("cpu", "cpu.shares") == "512"
        assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpuset", "cpuset.cpus") == "0"
    assert read("pids", "pids.max") == "50"
    st = runtime.stats(cid)
    assert st["memory"]["limit"] == 64 << 20 and 0 < st["memory"]["usage"] < 64 << 20
    assert st["pids"]["current"] == 1 and st["cpu"]["usage_ns"] > 0
    pid = runtime.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"/berth/{cid}" in f.read()
    runtime.delete(cid, force=True)


KILL_ALL_SCRIPT = r"""
child() { trap 'echo child >> /out/got; exit 0' USR1; echo ready >> /out/ready; while :; do sleep 0.05; done; }
child & child &
trap 'echo init >> /out/got' USR1
echo ready >> /out/ready
wait  # interrupted by the trapped USR1
wait  # then the init ends only once both children have had theirs
"""


def test_kill_all_signals_every_process(runtime, bundle, tmp_path):
    # Every process traps USR1 and writes a line; the init only exits after both children did. Signalling
    # the init alone (pid 1 of a pid namespace: its death would SIGKILL the rest) cannot pass.
    out = tmp_path / "out"
    out.mkdir()
    b = bundle(["sh", "-c", KILL_ALL_SCRIPT])
    b.edit(lambda c: c["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                          "options": ["bind"]}))
    cid = runtime.new_id("killall")
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    deadline = time.monotonic() + 30
    while not (out / "ready").exists() or len((out / "ready").read_text().split()) < 3:
        assert time.monotonic() < deadline, "the three processes never got ready"
        time.sleep(0.01)
    runtime.kill(cid, "USR1", all=True)
    runtime.wait_stopped(cid)  # bounded: an init waiting for a child that was not signalled fails here
    assert sorted((out / "got").read_text().split()) == ["child", "child", "init"]
    assert runtime.ps(cid) == []
    runtime.delete(cid)


def test_without_mount_namespace_only_chroot_and_nothing_mounted_on_host(runtime, bundle):
    from tests.engine.conftest import host_mounts_under

    b = bundle(["sh", "-c", "ls /; readlink /proc/self/ns/mnt 2>&1 || echo no-proc"], overlay=False)
    b.edit(lambda c: c["linux"].update(namespaces=[ns for ns in c["linux"]["namespaces"] if ns["type"] in ("pid", "uts")]))
    code, out, err = runtime.run_capture(runtime.new_id("nomnt"), b)
    assert code == 0, err
    assert "bin" in out.split() and "no-proc" in out  # chrooted into the rootfs, nothing mounted there
    assert host_mounts_under(b.path) == []


def test_shared_rootfs_propagation_leaves_nothing_on_the_host(runtime, bundle):
    from tests.engine.conftest import host_mounts_under

    b = bundle(["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"], overlay=False)
    b.edit(lambda c: c["linux"].update(rootfsPropagation="rshared"))
    code, out, err = runtime.run_capture(runtime.new_id("shared"), b)
    assert code == 0, err
    assert "shared:" in out  # the container's / is shared, as asked
    assert host_mounts_under(b.path) == []


def test_default_deny_profile_without_nnp_still_execs(runtime, bundle):
    # a filter loaded while still privileged (noNewPrivileges false) governs the runtime's
    # own last steps too: they must only need ordinary syscalls (no close_range, ...)
    allowed = ["read", "write", "openat", "open", "close", "fstat", "newfstatat", "stat", "lstat", "mmap",
               "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "access",
               "execve", "exit", "exit_group", "arch_prctl", "set_tid_address", "getpid", "getuid", "geteuid",
               "getgid", "getegid", "getppid", "uname", "fcntl", "getcwd", "chdir", "setgroups", "setresuid",
               "setresgid", "setuid", "setgid", "prctl", "capget", "capset", "getdents64", "lseek", "wait4",
               "clone", "fork", "vfork", "dup2", "dup3", "pipe", "pipe2", "futex", "set_robust_list", "rseq",
               "prlimit64", "getrandom", "sysinfo", "faccessat", "faccessat2", "readlink", "readlinkat",
               "statx", "pread64", "umask", "getpgrp", "setpgid", "getrlimit", "setrlimit", "statfs", "fstatfs"]
    b = bundle(["sh", "-c", "echo started; grep Seccomp: /proc/self/status"])
    b.edit(lambda c: (c["process"].update(noNewPrivileges=False), c["linux"].update(seccomp={
        "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]})))
    code, out, err = runtime.run_capture(runtime.new_id("deny"), b)
    assert code == 0, err
    assert out.splitlines() == ["started", "Seccomp:\t2"]
