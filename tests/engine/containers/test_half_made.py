"""A create whose process is killed before it writes its record (a worker killed -9 mid-create) leaves a
directory, a disk mount and an address that no record names; the next worker's reconcile undoes them. Found
when test teardowns began killing workers at once: the create of test_names_e2e's unwaited `check` container
left its loop mount behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.engine.conftest import host_mounts_under
from workers.engine.containers import ContainerManager

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[3]

# Runs create in a child that dies by SIGKILL where the record would be written: everything before it was made.
DIE_AT_RECORD = """
import os, signal, sys
from workers.engine.containers import ContainerManager
m = ContainerManager(sys.argv[1])
m._save = lambda rec: os.kill(os.getpid(), signal.SIGKILL)
m.create("busybox", name="half", command=["true"], disk=16 * 1024 * 1024, networks=["bridge"])
"""


def test_a_create_killed_before_its_record_is_undone_by_the_next_reconcile(state_root: Path):
    # mutant caught: reconcile without sweep_half_made (the dir, its loop mount and its address stay)
    proc = subprocess.run([sys.executable, "-c", DIE_AT_RECORD, str(state_root)], cwd=REPO, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    [half] = [d for d in (state_root / "containers").iterdir() if d.is_dir()]
    assert not (half / "container.json").exists() and host_mounts_under(half), "the kill left a mounted disk"
    net = json.loads(next((state_root / "net" / "networks").glob("*.json")).read_text())
    assert half.name in net["allocations"].values()

    m = ContainerManager(state_root)
    assert m.list(all=True) == []
    m.reconcile()
    assert not half.exists() and not host_mounts_under(half)
    net = json.loads(next((state_root / "net" / "networks").glob("*.json")).read_text())
    assert half.name not in net["allocations"].values()
    c = m.create("busybox", name="half", command=["true"], disk=16 * MiB)  # the name was never taken
    assert m.inspect("half")["id"] == c["id"]


def test_a_create_in_progress_is_not_swept(state_root: Path):
    # mutant caught: sweep_half_made without the create lock (a create holding it would lose its directory)
    m = ContainerManager(state_root)
    cdir = state_root / "containers" / ("ab" * 32)
    with m._lock(None):
        cdir.mkdir(parents=True)
        other = ContainerManager(state_root)
        t = threading.Thread(target=other.sweep_half_made)
        t.start()
        t.join(0.5)
        assert t.is_alive() and cdir.exists(), "the sweep must wait for the create's lock"
        (cdir / "container.json").write_text("{}")  # the create finishes with its record
    t.join(30)
    assert cdir.exists()
