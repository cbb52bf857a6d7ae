"""Container names through the name index (workers/engine/containers/name_index.py): never given twice, free again
after a remove, found by name, and a state root made before the index (or a remove cut short) still right."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workers.engine.containers import ContainerManager, NameTaken

pytestmark = pytest.mark.root


def test_a_name_is_given_once_found_by_name_and_free_after_remove(manager: ContainerManager):
    web = manager.create("busybox", name="web", command=["true"])
    with pytest.raises(NameTaken):
        manager.create("busybox", name="web", command=["true"])
    assert manager.inspect("web")["id"] == web["id"]
    generated = manager.create("busybox", command=["true"])
    assert generated["name"] and manager.inspect(generated["name"])["id"] == generated["id"]
    manager.remove("web")
    again = manager.create("busybox", name="web", command=["true"])
    assert manager.inspect("web")["id"] == again["id"] != web["id"]


def test_a_root_without_the_index_and_a_remove_cut_short(manager: ContainerManager, state_root: Path):
    old = manager.create("busybox", name="old", command=["true"])
    shutil.rmtree(state_root / "names")  # as a state root made before the index
    fresh = ContainerManager(state_root)
    assert fresh.inspect("old")["id"] == old["id"]  # found from the records
    with pytest.raises(NameTaken):  # the index is made from the records at the first create
        fresh.create("busybox", name="old", command=["true"])
    assert (state_root / "names" / "old").is_symlink()
    # a remove interrupted after the container's dir went: its name's link names no record, so it is free
    gone = fresh.create("busybox", name="gone", command=["true"])
    shutil.rmtree(state_root / "containers" / gone["id"])
    assert (state_root / "names" / "gone").is_symlink()
    assert fresh.create("busybox", name="gone", command=["true"])["id"] != gone["id"]
