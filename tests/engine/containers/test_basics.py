"""Create/start/logs/inspect/remove with real containers from busybox:latest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.conftest import cgroup_dirs, host_mounts_under
from tests.engine.containers.helpers import output, run
from workers.engine.containers import (
    ContainerManager,
    InvalidConfig,
    InvalidState,
    NameTaken,
    NoSuchContainer,
    NoSuchImage,
    volumes,
)

pytestmark = pytest.mark.root


def test_echo_logs_tell_stdout_from_stderr(manager: ContainerManager):
    c = run(manager, "echo to-out; echo to-err >&2; exit 3", name="echo")
    assert c["state"] == "exited" and c["exit_code"] == 3 and c["name"] == "echo"
    recs = list(manager.logs("echo"))
    assert [(r["stream"], r["log"]) for r in recs] == [("stdout", "to-out\n"), ("stderr", "to-err\n")]
    assert all(r["time"].endswith("Z") for r in recs)
    assert [r["log"] for r in manager.logs("echo", stdout=False)] == ["to-err\n"]
    assert [r["log"] for r in manager.logs("echo", tail=1)] == ["to-err\n"]
    assert list(manager.logs("echo", since=4102444800.0)) == []  # year 2100
    from workers.engine.containers.logs import parse_time

    assert list(manager.logs("echo", since=parse_time(recs[1]["time"]))) == recs[1:]
    assert list(manager.logs("echo", since=parse_time(recs[0]["time"]) - 1)) == recs
    assert manager.log_files("echo") == [Path(c["log_path"])]
    # lookups: name, id, id prefix
    assert manager.inspect(c["id"][:10])["name"] == "echo"
    assert manager.inspect(c["id"])["id"] == c["id"]


def test_process_settings_applied_inside(manager: ContainerManager):
    c = run(manager, 'echo "$GREETING|$PATH|$(pwd)|$(id -u):$(id -g)|$(hostname)|$HOSTNAME"',
            env={"GREETING": "hello world"}, workdir="/srv/app", user="nobody", hostname="box1")
    assert c["exit_code"] == 0, (c["state"], c["status_message"], output(manager, c["id"]))
    greeting, path, cwd, ids, host, env_host = output(manager, c["id"], "stdout").strip().split("|")
    assert greeting == "hello world"
    assert "/bin" in path  # the image's/default PATH stays when the user adds variables
    assert cwd == "/srv/app"
    assert ids == "65534:65534"
    assert host == env_host == "box1"


def test_command_and_entrypoint_follow_docker_rules(manager: ContainerManager):
    c = run(manager, "unused", )  # busybox's Cmd is ["sh"]; command replaces it
    assert c["exit_code"] == 127
    c2 = manager.create("busybox", entrypoint=["echo", "from-entrypoint"])
    manager.start(c2["id"])
    assert manager.wait(c2["id"], timeout=30)["exit_code"] == 0
    assert output(manager, c2["id"]) == "from-entrypoint\n"  # image Cmd dropped with a new entrypoint
    c3 = manager.create("busybox", entrypoint=["echo"], command=["a", "b"])
    manager.start(c3["id"])
    manager.wait(c3["id"], timeout=30)
    assert output(manager, c3["id"]) == "a b\n"


def test_network_only_loopback_up_and_no_route(manager: ContainerManager):
    c = run(manager, "ls /sys/class/net; echo ==; tail -n +3 /proc/net/dev | cut -d: -f1; echo ==; "
                     "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; echo ==; ip route; ip -6 route; "
                     "echo ==; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-works")
    out = output(manager, c["id"], "stdout")
    sysnet, procnet, lo, routes, ping = out.split("==\n")
    assert sysnet.split() == ["lo"]
    assert [x.strip() for x in procnet.split()] == ["lo"]
    operstate, flags = lo.split()
    assert operstate in ("unknown", "up") and int(flags, 16) & 0x1  # IFF_UP
    assert "default" not in routes and routes.strip() in ("", "::1 dev lo proto kernel metric 256 pref medium")
    assert ping.strip() == "lo-works"


def test_memory_below_minimum_refused_and_nothing_left(manager: ContainerManager, state_root: Path):
    before = sorted(p.name for p in (state_root / "containers").iterdir())
    with pytest.raises(InvalidConfig) as e:
        manager.create("busybox", name="tiny", memory=1)
    assert str(e.value) == "memory limit 1 B is below the minimum of 6 MiB"
    assert e.value.field == "memory"
    assert sorted(p.name for p in (state_root / "containers").iterdir()) == before
    assert manager.list() == []
    with pytest.raises(NoSuchContainer):
        manager.inspect("tiny")


def test_bad_inputs_are_refused_readably(manager: ContainerManager, state_root: Path):
    with pytest.raises(NoSuchImage, match="no such image 'foo:latest' on this host"):
        manager.create("foo:latest", name="x")
    for kw, field in [({"cpus": 0}, "cpus"), ({"pids_limit": 0}, "pids_limit"), ({"restart_policy": "sometimes"},
                      "restart_policy"), ({"mounts": ["relative:dst"]}, "mounts"), ({"name": "bad name"}, "name"),
                      ({"env": ["=x"]}, "env"), ({"user": "ghost"}, "user"), ({"workdir": "rel"}, "workdir")]:
        with pytest.raises(InvalidConfig) as e:
            manager.create("busybox", **kw)
        assert e.value.field == field, (kw, str(e.value))
        assert "\n" not in str(e.value)
    assert manager.list() == [] and list((state_root / "containers").iterdir()) == []


def test_name_taken(manager: ContainerManager):
    first = manager.create("busybox", name="web")
    with pytest.raises(NameTaken) as e:
        manager.create("busybox", name="web")
    assert str(e.value) == f"name 'web' is already in use by container {first['id'][:12]}"
    generated = manager.create("busybox")["name"]
    assert generated and generated != "web" and "_" in generated
    assert len(manager.list()) == 2


def test_remove_leaves_nothing(manager: ContainerManager, state_root: Path):
    vol1 = volumes.create(state_root, "vol1")["id"]
    c = manager.create("busybox", name="long", command=["sleep", "1000"], mounts=[f"{vol1}:/data"])
    manager.start("long")
    info = manager.inspect("long")
    assert info["state"] == "running" and info["pid"]
    pid = info["pid"]
    with pytest.raises(InvalidState, match="stop it first"):
        manager.remove("long")
    assert cgroup_dirs(f"/berth/{c['id']}")
    manager.remove("long", force=True)
    assert not Path(f"/proc/{pid}").exists() or _zombie_or_gone(pid)
    assert cgroup_dirs(f"/berth/{c['id']}") == []
    assert host_mounts_under(state_root) == []
    assert not (state_root / "containers" / c["id"]).exists()
    assert not (state_root / "runtime" / c["id"]).exists()
    assert not list((state_root / "images" / "users").iterdir())
    assert (state_root / "volumes" / vol1 / "_data").is_dir()  # named volumes outlive containers
    with pytest.raises(NoSuchContainer):
        manager.inspect("long")
    assert manager.list() == []


def _zombie_or_gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_read_only_rootfs_refuses_writes(manager: ContainerManager):
    c = run(manager, "touch /new 2>&1; echo rc=$?; echo ok > /dev/shm/x && echo shm-ok", read_only=True)
    out = output(manager, c["id"])
    assert "Read-only file system" in out and "rc=1" in out and "shm-ok" in out


def test_bind_mount_and_named_volume_visible_and_persistent(manager: ContainerManager, tmp_path: Path,
                                                           state_root: Path):
    data = volumes.create(state_root, "data")["id"]
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "from-host").write_text("host-data\n")
    c = run(manager, "cat /h/from-host; echo written > /h/from-container; echo v1 > /v/file; "
                     "touch /ro/x 2>/dev/null || echo ro-refused",
            mounts=[f"{host}:/h", f"{data}:/v", f"{host}:/ro:ro"])
    assert output(manager, c["id"]).split() == ["host-data", "ro-refused"]
    assert (host / "from-container").read_text() == "written\n"
    manager.remove(c["id"])
    c2 = run(manager, "cat /again/file", mounts=[f"{data}:/again"])
    assert output(manager, c2["id"]) == "v1\n"


def test_pids_and_cpu_limits_reach_the_cgroup(manager: ContainerManager):
    c = manager.create("busybox", command=["sleep", "1000"], pids_limit=20, cpus=0.5, memory=64 * 1024 * 1024)
    manager.start(c["id"])
    try:
        dirs = {os.path.basename(os.path.dirname(os.path.dirname(d))) + "/" + os.path.basename(
            os.path.dirname(d)): d for d in cgroup_dirs(f"/berth/{c['id']}")}
        values = {}
        for d in cgroup_dirs(f"/berth/{c['id']}"):
            for name in ("pids.max", "cpu.cfs_quota_us", "memory.limit_in_bytes", "cpu.max", "memory.max"):
                if os.path.exists(os.path.join(d, name)):
                    values[name] = open(os.path.join(d, name)).read().strip()
        assert values.get("pids.max") == "20", (values, dirs)
        assert values.get("cpu.cfs_quota_us") == "50000" or values.get("cpu.max", "").startswith("50000")
        assert values.get("memory.limit_in_bytes") == str(64 * 1024 * 1024) or values.get("memory.max") == str(
            64 * 1024 * 1024)
    finally:
        manager.remove(c["id"], force=True)


def test_tty_and_default_hostname(manager: ContainerManager):
    c = run(manager, "tty; hostname", tty=True)
    lines = output(manager, c["id"]).split()
    assert lines == ["/dev/console", c["id"][:12]] or lines == ["/dev/pts/0", c["id"][:12]]
    assert {r["stream"] for r in manager.logs(c["id"])} == {"stdout"}  # a terminal has one stream


def test_start_failure_is_one_readable_line_and_leaves_no_runtime_state(manager: ContainerManager,
                                                                         state_root: Path):
    from workers.engine.containers import ContainerError

    c = manager.create("busybox", name="noexec", command=["/nonexistent"])
    with pytest.raises(ContainerError) as e:
        manager.start("noexec")
    assert str(e.value) == 'cannot start container noexec: exec: "/nonexistent": stat /nonexistent: ' \
                           "no such file or directory"
    info = manager.inspect("noexec")
    assert info["state"] == "created" and info["status_message"].startswith("start failed: exec:")
    assert not (state_root / "runtime" / c["id"]).exists() and cgroup_dirs(f"/berth/{c['id']}") == []
    manager.remove("noexec")
    assert manager.list() == []


def test_seccomp_profile_applies_also_from_the_runtime_cache(manager: ContainerManager, state_root: Path):
    script = "grep Seccomp: /proc/self/status; unshare -n true 2>/dev/null && echo unshare-allowed || echo refused"
    first = run(manager, script)
    assert list((state_root / "runtime" / ".seccomp-cache").glob("*.bpf"))  # the second start reads it
    second = run(manager, script)
    for c in (first, second):
        assert output(manager, c["id"]).split() == ["Seccomp:", "2", "refused"]
