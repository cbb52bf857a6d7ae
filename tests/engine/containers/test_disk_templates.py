"""Disk limits from a copied empty filesystem (storage/templates.py) rather than mkfs per container: each copy
is a filesystem of its own, sparse, and mkfs runs once per size."""

from __future__ import annotations

import os
import time

import pytest

from tests.engine.containers.helpers import output, run
from workers.engine.containers import ContainerManager
from workers.engine.storage import quota, templates

pytestmark = pytest.mark.root

MiB = 1024 * 1024


def test_containers_with_a_disk_limit_get_filesystems_of_their_own_from_one_mkfs(manager: ContainerManager,
                                                                                 monkeypatch):
    made = []
    real = quota._mkfs
    monkeypatch.setattr(quota, "_mkfs", lambda image, size: (made.append(size), real(image, size))[1])
    a = run(manager, "echo a > /mine; ls /", disk=48 * MiB)
    b = run(manager, "ls /; cat /mine 2>&1; dd if=/dev/zero of=/big bs=1M count=100 2>&1", disk=48 * MiB)
    assert made == [48 * MiB]  # the template only; both disks are copies
    assert "mine" in output(manager, a["id"])
    text = output(manager, b["id"])
    assert "No such file or directory" in text and "No space left on device" in text, text
    rw_a = manager.root / "containers" / a["id"] / "rw"
    rw_b = manager.root / "containers" / b["id"] / "rw"
    for rw in (rw_a, rw_b):  # off the host's mount table since their start (quota.detach): back to read them
        quota.ensure_mounted(rw)
    assert (rw_a / "upper" / "mine").read_text() == "a\n" and not (rw_b / "upper" / "mine").exists()
    assert os.stat(rw_a).st_dev != os.stat(rw_b).st_dev  # two filesystems, each its own loop device
    template = quota.templates_dir(manager.root) / templates._name(48 * MiB)
    # sparse copies: a's image holds about what the template holds, not its 48 MiB
    assert os.stat(quota.image_of(rw_a)).st_blocks <= os.stat(template).st_blocks + 2 * MiB // 512
    used, total = quota.usage(rw_b)
    assert total <= 48 * MiB and used > 30 * MiB
    manager.remove(a["id"])
    manager.remove(b["id"])
    assert template.exists()  # kept for the next create


def test_a_template_left_half_made_is_removed_and_at_most_keep_stay(tmp_path, monkeypatch):
    tdir = tmp_path / "t"
    tdir.mkdir()
    stale = tdir / ".dead.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = tdir / ".alive.tmp"
    fresh.write_bytes(b"x")  # another create making one now
    monkeypatch.setattr(templates, "KEEP", 2)
    for i, size in enumerate((16 * MiB, 17 * MiB, 18 * MiB)):
        templates.copy_to(tdir, size, tmp_path / f"img{i}", quota._mkfs)
        os.utime(tdir / templates._name(size), (time.time() - 100 + i, time.time() - 100 + i))
    templates._prune(tdir)
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tdir.glob("ext4-*")) == sorted(templates._name(s) for s in (17 * MiB, 18 * MiB))
    assert all((tmp_path / f"img{i}").stat().st_size == (16 + i) * MiB for i in range(3))
