"""The pure cgroup v2 file logic against a fake cgroup tree in a tmp dir.

This host is hybrid (v1 controllers + cgroup2 beside them), so the kernel never runs the v2 paths
here: detection, delegation of controllers, the limit files, stats, the freezer and kill are checked
on a directory laid out as a v2 host's /sys/fs/cgroup would be. The fake kernel is only what the
file logic reads back: controller lists, cgroup.events following cgroup.freeze, counters.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from workers.engine.runtime.cgroups import UNIFIED, Cgroup, host_mode
from workers.engine.runtime.cgroups.v1 import CgroupV1
from workers.engine.runtime.cgroups.v2 import CgroupV2

ROW = "{id} 1 0:{id} {root} {mp} rw,nosuid - {fs} {fs} {opts}\n"
V2_FILES = ("cgroup.procs", "cgroup.freeze", "cgroup.events", "cgroup.subtree_control", "memory.max", "memory.swap.max",
            "memory.low", "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "pids.max", "io.max")


def mountinfo(tmp_path: Path, mounts: list[tuple[str, str, str]], root: str = "/") -> str:
    """A /proc/self/mountinfo with (mountpoint, fstype, super options) rows."""
    path = tmp_path / "mountinfo"
    path.write_text("".join(ROW.format(id=i + 20, root=root, mp=mp, fs=fs, opts=opts)
                            for i, (mp, fs, opts) in enumerate(mounts)))
    return str(path)


def kernel_dir(d: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    """A cgroup directory as the kernel fills it on mkdir: empty control files, the controller list."""
    d.mkdir(parents=True, exist_ok=True)
    for name in V2_FILES:
        (d / name).touch()
    (d / "cgroup.controllers").write_text(controllers + "\n")
    (d / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    return d


@pytest.fixture
def v2_host(tmp_path):
    """A v2 host: one cgroup2 mount at <tmp>/cgroup with a /berth parent, as the runtime uses."""
    mnt = kernel_dir(tmp_path / "cgroup")
    kernel_dir(mnt / "berth")
    return mnt, mountinfo(tmp_path, [("/", "ext4", "rw"), (str(mnt), "cgroup2", "rw,nsdelegate")])


def container(v2_host, name: str = "c1") -> CgroupV2:
    mnt, info = v2_host
    cg = Cgroup.for_path(f"/berth/{name}", mountinfo=info)
    assert isinstance(cg, CgroupV2) and cg.dirs == {UNIFIED: str(mnt / "berth" / name)}
    cg.create()
    kernel_dir(Path(cg.dirs[UNIFIED]))
    return cg


class FakeFreezer:
    """Plays the kernel's part of the v2 freezer: cgroup.events reports the state cgroup.freeze asks for.
    The v2 freezer is asynchronous in the kernel too: the runtime must wait for cgroup.events."""

    def __init__(self, d: str):
        self.d = d
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        freeze, events = os.path.join(self.d, "cgroup.freeze"), os.path.join(self.d, "cgroup.events")
        while not self.stop.wait(0.001):
            want = (Path(freeze).read_text().strip() or "0")[:1]
            tmp = events + ".new"
            Path(tmp).write_text(f"populated 1\nfrozen {want}\n")
            os.replace(tmp, events)  # readers see the old or the new file, never half of one

    def __enter__(self) -> FakeFreezer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def test_one_detector_reads_the_host_mode_from_mountinfo(tmp_path):
    assert host_mode(mountinfo(tmp_path, [("/", "ext4", "rw"), ("/sys/fs/cgroup", "cgroup2", "rw")])) == "v2"
    hybrid = [("/sys/fs/cgroup", "tmpfs", "rw"), ("/sys/fs/cgroup/unified", "cgroup2", "rw"),
              ("/sys/fs/cgroup/memory", "cgroup", "rw,memory")]
    assert host_mode(mountinfo(tmp_path, hybrid)) == "hybrid"
    assert host_mode(mountinfo(tmp_path, [("/sys/fs/cgroup", "tmpfs", "rw"),
                                          ("/sys/fs/cgroup/memory", "cgroup", "rw,memory")])) == "v1"


def test_implementation_follows_the_hierarchies(tmp_path):
    hybrid = mountinfo(tmp_path, [("/sys/fs/cgroup/unified", "cgroup2", "rw"),
                                  ("/sys/fs/cgroup/memory", "cgroup", "rw,memory")])
    cg = Cgroup.for_path("/berth/x", mountinfo=hybrid)
    assert isinstance(cg, CgroupV1) and not cg.v2  # hybrid: limits go to v1, cgroup2 is only joined
    assert cg.dirs == {UNIFIED: "/sys/fs/cgroup/unified/berth/x", "memory": "/sys/fs/cgroup/memory/berth/x"}
    restored = Cgroup.from_json(Cgroup("/berth/y", {UNIFIED: "/sys/fs/cgroup/berth/y"}).to_json())
    assert isinstance(restored, CgroupV2) and restored.v2


def test_cgroup_namespace_root_is_stripped(tmp_path):
    # inside a cgroup namespace the mount's root is our own cgroup: paths below it map under the mount
    info = mountinfo(tmp_path, [(str(tmp_path / "cg"), "cgroup2", "rw")], root="/outer")
    assert Cgroup.for_path("/outer/berth/x", mountinfo=info).dirs == {UNIFIED: str(tmp_path / "cg" / "berth" / "x")}


def test_create_delegates_controllers_down_the_path(v2_host):
    mnt, info = v2_host
    (mnt / "berth" / "cgroup.controllers").write_text("cpu memory pids\n")  # what the root delegated to /berth
    cg = Cgroup.for_path("/berth/c1", mountinfo=info)
    cg.create()
    assert os.path.isdir(cg.dirs[UNIFIED])
    assert (mnt / "cgroup.subtree_control").read_text() == "+cpu +cpuset +memory +pids +io +hugetlb"
    assert (mnt / "berth" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_limits_are_written_to_the_v2_files(v2_host):
    cg = container(v2_host)
    cg.apply({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
              "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
              "pids": {"limit": 50}, "unified": {"io.max": "8:0 rbps=1048576"}})
    d = Path(cg.dirs[UNIFIED])
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == str(32 << 20)  # OCI swap is memory+swap; v2 counts swap alone
    assert (d / "memory.low").read_text() == str(32 << 20)
    assert (d / "cpu.weight").read_text() == "20"  # runc's mapping of shares 512
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpuset.cpus").read_text() == "0-1" and (d / "cpuset.mems").read_text() == "0"
    assert (d / "pids.max").read_text() == "50"
    assert (d / "io.max").read_text() == "8:0 rbps=1048576"


def test_unlimited_values_are_written_as_max(v2_host):
    cg = container(v2_host)
    cg.apply({"memory": {"limit": -1, "swap": -1}, "cpu": {"period": 250000}, "pids": {"limit": 0}})
    d = Path(cg.dirs[UNIFIED])
    assert (d / "memory.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max 250000"
    assert (d / "pids.max").read_text() == "max"


def test_a_missing_limit_file_fails_loudly(v2_host):
    cg = container(v2_host)
    os.unlink(os.path.join(cg.dirs[UNIFIED], "memory.max"))  # memory not delegated to this cgroup
    with pytest.raises(OSError, match="memory.max"):
        cg.apply({"memory": {"limit": 64 << 20}})


def test_stats_and_oom_kills_are_read_from_the_v2_files(v2_host):
    cg = container(v2_host)
    d = Path(cg.dirs[UNIFIED])
    (d / "memory.current").write_text("1048576\n")
    (d / "memory.max").write_text("max\n")
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.max").write_text("50\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert cg.stats() == {"memory": {"usage": 1048576, "limit": None, "oom_kills": 2},
                          "cpu": {"usage_ns": 1500000}, "pids": {"current": 3, "limit": 50}}


def test_freeze_writes_cgroup_freeze_and_waits_for_the_kernel(v2_host):
    cg = container(v2_host)
    with FakeFreezer(cg.dirs[UNIFIED]):
        cg.freeze()
        assert cg.frozen()  # cgroup.events said so before freeze() returned
        assert Path(cg.dirs[UNIFIED], "cgroup.freeze").read_text() == "1"
        cg.thaw()
        assert not cg.frozen()
        assert Path(cg.dirs[UNIFIED], "cgroup.freeze").read_text() == "0"


def test_kill_signals_every_process_in_the_tree_while_frozen(v2_host):
    cg = container(v2_host)
    sub = kernel_dir(Path(cg.dirs[UNIFIED]) / "inner")  # a nested cgroup the container made
    children = []
    try:
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
                while True:
                    signal.pause()
            children.append(pid)
        cg.join(children[0])
        (sub / "cgroup.procs").write_text(f"{children[1]}\n")
        assert cg.pids() == sorted(children)
        with FakeFreezer(cg.dirs[UNIFIED]):
            cg.signal_all(signal.SIGKILL)
            assert Path(cg.dirs[UNIFIED], "cgroup.freeze").read_text() == "0"  # thawed again after the kill
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        children.clear()
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
