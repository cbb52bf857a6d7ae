"""Limits a container gets by default and the disk quota of its writes, enforced by the real kernel."""

from __future__ import annotations

import glob
import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.engine.conftest import host_mounts_under
from tests.engine.containers.helpers import output, run
from workers.engine.containers import ContainerManager
from workers.engine.containers.config import DEFAULT_PIDS_LIMIT
from workers.engine.containers.errors import InvalidConfig
from workers.engine.storage import quota

MiB = 1024 * 1024


def loop_devices_of(image: Path) -> list[str]:
    """Loop devices whose backing file is `image` (as the kernel lists them)."""
    out = []
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            text = Path(backing).read_text().strip()
        except OSError:
            continue
        if text.removesuffix(" (deleted)") == str(image):
            out.append(backing.split("/")[3])
    return out


def test_a_container_without_limits_cannot_fork_past_the_default_pids_limit(manager: ContainerManager):
    # A fork loop in a subshell: each started sleep is counted with builtins only (no fork), so when the
    # fork fails the count says how far it got; pid 1 (sh) and the subshell are the other two pids.
    script = ("( i=0; while [ $i -lt 3000 ]; do sleep 1000 & i=$((i+1)); echo $i > /tmp/n; done ); "
              "read n < /tmp/n; echo reached=$n")
    c = run(manager, script)
    assert c["config"]["pids_limit"] == DEFAULT_PIDS_LIMIT == 2048
    text = output(manager, c["id"])
    assert "Resource temporarily unavailable" in text, text[-500:]  # EAGAIN from fork
    reached = int(text.rsplit("reached=", 1)[1].split()[0])
    assert DEFAULT_PIDS_LIMIT - 4 <= reached <= DEFAULT_PIDS_LIMIT - 2, text[-500:]


def test_an_explicit_pids_limit_replaces_the_default(manager: ContainerManager):
    c = manager.create("busybox", command=["true"], pids_limit=100)
    assert c["config"]["pids_limit"] == 100
    other = ContainerManager(manager.root, default_pids_limit=300).create("busybox", command=["true"])
    assert other["config"]["pids_limit"] == 300


def test_writes_past_the_disk_limit_fail_with_enospc_and_remove_leaves_nothing(manager: ContainerManager):
    c = manager.create("busybox", command=["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=200; echo rc=$?"],
                       disk=64 * MiB)
    cdir = manager.root / "containers" / c["id"]
    rw = cdir / "rw"
    image = quota.image_of(rw)
    assert quota.is_mounted(rw) and loop_devices_of(image)
    manager.start(c["id"])
    done = manager.wait(c["id"], timeout=60)
    text = output(manager, c["id"])
    assert "No space left on device" in text, text
    assert "rc=1" in text, text
    assert done["config"]["disk"] == 64 * MiB
    # the host gave the container at most its quota (the image is sparse: only written blocks count)
    assert os.stat(image).st_blocks * 512 <= 64 * MiB
    quota.ensure_mounted(rw)  # off the host's table since the start (detach); back as the host reads it
    used, total = quota.usage(rw)
    assert used > 40 * MiB and total <= 64 * MiB

    manager.remove(c["id"])
    assert not host_mounts_under(manager.root / "containers")
    assert not loop_devices_of(image)
    assert not image.exists() and not cdir.exists()


def test_a_disk_limited_container_is_mounted_again_after_a_reboot(manager: ContainerManager):
    c = run(manager, "cat /data 2>/dev/null; echo kept > /data", disk=32 * MiB)
    rw = manager.root / "containers" / c["id"] / "rw"
    assert output(manager, c["id"]) == ""
    quota.ensure_mounted(rw)
    subprocess.run(["umount", str(rw)], check=True)  # what a reboot does to the mount
    assert not quota.is_mounted(rw) and not loop_devices_of(quota.image_of(rw))
    manager.start(c["id"])
    manager.wait(c["id"], timeout=60)
    assert output(manager, c["id"]) == "kept\n"  # the second run had its disk
    manager.remove(c["id"])
    assert not loop_devices_of(quota.image_of(rw)) and not rw.exists()


def test_a_running_containers_disk_is_off_the_host_table_and_comes_back_as_the_same_filesystem(
        manager: ContainerManager):
    """Every mount on the host is copied into each new container's mount namespace: a running container's disk
    leaves the host's table (its namespace holds it), and what the host reads later is that same filesystem on
    that same loop device (never a second mount of the image, which would corrupt it)."""
    c = manager.create("busybox", command=["sh", "-c", "echo alice:x:4321:4321::/:/bin/sh >> /etc/passwd; echo one > /f; sleep 1000"],
                       disk=32 * MiB)
    cdir = manager.root / "containers" / c["id"]
    rw = cdir / "rw"
    image = quota.image_of(rw)
    try:
        manager.start(c["id"])
        assert not host_mounts_under(cdir), host_mounts_under(cdir)
        devices = loop_devices_of(image)
        assert len(devices) == 1  # held by the container
        deadline = time.monotonic() + 30
        while manager.exec(c["id"], ["test", "-e", "/f"]) != 0:
            assert time.monotonic() < deadline, output(manager, c["id"])
            time.sleep(0.05)

        # exec as a user the container added: its /etc/passwd is read from the upper dir on the disk
        s = manager.exec_start(c["id"], ["id", "-u"], user="alice")
        got = b"".join(f.get("data", b"") for f in manager.exec_attach(c["id"], s["id"]))
        assert got.strip() == b"4321", got
        assert not host_mounts_under(cdir) and loop_devices_of(image) == devices

        buf = io.BytesIO()
        manager.export(c["id"], buf)  # the host reads the running container's files
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tf:
            assert tf.extractfile("f").read() == b"one\n"
        assert quota.is_mounted(rw) and loop_devices_of(image) == devices
        assert manager.exec(c["id"], ["sh", "-c", "echo two > /g; sync"]) == 0
        assert (rw / "upper" / "g").read_text() == "two\n"  # one filesystem: the host sees the write at once
    finally:
        manager.remove(c["id"], force=True)
    assert not loop_devices_of(image) and not cdir.exists()


def test_a_disk_limit_below_the_minimum_is_refused_at_the_field(manager: ContainerManager):
    with pytest.raises(InvalidConfig) as err:
        manager.create("busybox", command=["true"], disk=MiB)
    assert err.value.field == "disk" and "below the minimum of 16 MiB" in str(err.value)
    assert not list((manager.root / "containers").iterdir())


def test_an_image_that_does_not_mount_leaves_no_loop_device_and_says_why(tmp_path):
    """The loop device is attached by ioctl (storage/loop.py) before mount(2): a mount that fails must detach it."""
    image = tmp_path / "rw.disk"
    image.write_bytes(b"\xff" * MiB)  # no filesystem in it
    (tmp_path / "rw").mkdir()
    with pytest.raises(quota.QuotaError) as err:
        quota.ensure_mounted(tmp_path / "rw")
    assert str(err.value).startswith(f"cannot mount the disk of {tmp_path / 'rw'}: "), err.value
    assert not loop_devices_of(image)
    assert not quota.is_mounted(tmp_path / "rw")
