"""cgroups layer on its own: layout detection and the v2 code path (on the host's cgroup2
hierarchy: the unified one beside v1 on hybrid hosts, the only one on v2 hosts)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from tests.engine.conftest import in_freezer, wchan
from workers.engine.runtime.cgroups import UNIFIED, Cgroup, hierarchies, host_mode, resolve_path

pytestmark = pytest.mark.root


def test_host_mode_matches_mounts():
    keys = {k for k, _, _ in hierarchies()}
    mode = host_mode()
    assert mode in ("v1", "v2", "hybrid")
    assert (mode == "v2") == (keys == {UNIFIED})
    assert (mode == "hybrid") == (UNIFIED in keys and len(keys) > 1)


def test_a_process_that_keeps_the_hierarchies_reads_the_mount_table_once(monkeypatch, tmp_path):
    """The monitor keeps them (forking.preload): its forks, which create every container, no longer parse the
    host's whole mount table (4,000+ lines with 1,000 containers) up to three times per create."""
    import builtins

    from workers.engine.runtime.cgroups import hierarchy

    fresh = hierarchies()
    monkeypatch.setattr(hierarchy, "_kept", None)
    hierarchy.keep_hierarchies()
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    assert hierarchies() == fresh
    assert hierarchy.MOUNTINFO not in opened
    # another table (a fake host in tests) is still read
    fake = tmp_path / "mountinfo"
    fake.write_text("30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
    assert hierarchies(str(fake)) == [(UNIFIED, "/sys/fs/cgroup", "/")]
    assert str(fake) in opened


def test_resolve_path_forms():
    assert resolve_path(None, "abc") == "/berth/abc"
    assert resolve_path("/a/b", "x") == "/a/b"
    assert resolve_path("a/b", "x") == "/a/b"
    assert resolve_path("system.slice:berth:abc", "abc") == "/system.slice/berth-abc.scope"


def test_v2_join_freeze_thaw_kill_destroy():
    mnt = next((m for k, m, _ in hierarchies() if k == UNIFIED), None)
    if mnt is None:
        pytest.skip("no cgroup2 hierarchy on this host")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"berth-test-v2-{uuid.uuid4().hex[:8]}"
    cg = Cgroup("/" + name, {UNIFIED: os.path.join(mnt, name)})
    assert cg.v2
    cg.create()
    pid = os.fork()
    if pid == 0:
        while True:
            time.sleep(0.01)
    try:
        cg.join(pid)
        assert cg.pids() == [pid]
        cg.freeze()
        assert cg.frozen()
        assert in_freezer(pid), wchan(pid)  # the kernel holds it in the freezer (not "no CPU time for 0.2 s")
        cg.thaw()
        assert not cg.frozen()
        cg.signal_all(signal.SIGKILL)
        assert os.waitpid(pid, 0)[0] == pid
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        cg.destroy()
    assert not os.path.exists(os.path.join(mnt, name))
