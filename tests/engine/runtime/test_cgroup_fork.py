"""A container's init is born in its cgroup2 directory (clone3 with CLONE_INTO_CGROUP) and joins its cgroup v1
directories itself, writing "0" to their `tasks`: the caller migrates nothing (its first write to cgroup.procs
waited for an RCU grace period, 5-11 ms of each create here). A kernel that refuses the clone gets the old way:
the caller moves the init."""

from __future__ import annotations

import errno
import os
import signal
import uuid

import pytest

from tests.engine.conftest import cgroup_dirs
from workers.engine.runtime import init as init_mod
from workers.engine.runtime.cgroup_fork import fork_into_cgroup, join_v1_self
from workers.engine.runtime.cgroups import Cgroup
from workers.engine.runtime.cgroups.hierarchy import UNIFIED, hierarchies

pytestmark = pytest.mark.root


def _cgroups_of(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as {hierarchy key as hierarchies() names it: path}, for the hierarchies Berth uses."""
    keys = {key for key, _mnt, _root in hierarchies()}
    with open(f"/proc/{pid}/cgroup") as f:
        rows = {line.split(":", 2)[1] or UNIFIED: line.split(":", 2)[2].strip() for line in f if line.strip()}
    return {k: p for k, p in rows.items() if k in keys}


def _unified_mount() -> str:
    for key, mnt, _root in hierarchies():
        if key == UNIFIED:
            return mnt
    pytest.skip("no cgroup2 hierarchy on this host")


@pytest.fixture
def cgroup():
    """A fresh cgroup of a test name in every hierarchy of the host: (its path, Cgroup)."""
    path = f"/berth-test-fork-{uuid.uuid4().hex[:8]}"
    cg = Cgroup.for_path(path)
    cg.create()
    try:
        yield path, cg
    finally:
        cg.destroy(timeout=5)


def test_the_child_is_a_member_of_the_cgroup2_directory_from_its_first_instruction(cgroup):
    path, cg = cgroup
    _unified_mount()
    fd = os.open(cg.dirs[UNIFIED], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    try:
        pid = fork_into_cgroup(fd)
        if pid == 0:  # the child: waits, joins the v1 directories itself, says so, waits to be killed
            try:
                os.close(go_w)
                os.read(go_r, 1)
                join_v1_self([d for key, d in cg.dirs.items() if key != UNIFIED])
                os.write(done_w, b"1")
                os.read(go_r, 1)
            finally:
                os._exit(0)
        try:
            before = _cgroups_of(pid)  # it has done nothing yet
            assert before[UNIFIED] == path
            assert all(p != path for k, p in before.items() if k != UNIFIED)  # v1: still the parent's
            os.write(go_w, b"1")
            assert os.read(done_r, 1) == b"1"
            after = _cgroups_of(pid)
            assert set(after) == set(cg.dirs) and set(after.values()) == {path}, after
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        for f in (fd, go_r, go_w, done_r, done_w):
            os.close(f)


def test_a_containers_init_is_never_moved_by_its_caller(runtime, bundle, monkeypatch):
    _unified_mount()

    def no_migration(self, pid):
        raise AssertionError(f"the caller moved pid {pid} into {self.path}")

    monkeypatch.setattr(Cgroup, "join", no_migration)
    b = bundle(["sleep", "100"])
    cid = runtime.new_id("born")
    pid = runtime.create(cid, str(b.path))["pid"]
    try:
        assert set(_cgroups_of(pid).values()) == {f"/berth/{cid}"}
        assert cgroup_dirs(f"/berth/{cid}")
    finally:
        runtime.delete(cid, force=True)


def test_a_kernel_that_refuses_the_clone_gets_its_init_moved_by_the_caller(runtime, bundle, monkeypatch):
    def refused(fd):
        raise OSError(errno.ENOSYS, "clone3 into a cgroup: Function not implemented")

    moved = []
    join = Cgroup.join

    def spied(self, pid):
        moved.append(pid)
        join(self, pid)

    monkeypatch.setattr(init_mod, "fork_into_cgroup", refused)  # in the forked intermediate too
    monkeypatch.setattr(Cgroup, "join", spied)
    b = bundle(["sleep", "100"])
    cid = runtime.new_id("moved")
    pid = runtime.create(cid, str(b.path))["pid"]
    try:
        assert moved == [pid]
        assert set(_cgroups_of(pid).values()) == {f"/berth/{cid}"}
    finally:
        runtime.delete(cid, force=True)
