"""Named volumes of the engine: addressed by id, refused while in use, removed without following links.

The symlink test plants, inside a volume, links to a host canary directory and file (made by a real
container, as an attacker would) and checks that removing the volume leaves the canary whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.engine.containers.helpers import output, run
from tests.engine.containers.test_containers_cli import berth
from workers.engine.containers import ContainerManager, InvalidConfig, volumes

pytestmark = pytest.mark.root


def test_create_inspect_list_remove(state_root: Path):
    a = volumes.create(state_root, "data", labels={"berth.owner": "1"})
    b = volumes.create(state_root, "data")  # another tenant's "data": a volume of its own
    assert a["id"] != b["id"] and volumes.is_id(a["id"])
    assert Path(a["mountpoint"]) == state_root / "volumes" / a["id"] / "_data" and Path(a["mountpoint"]).is_dir()
    assert volumes.inspect(state_root, a["id"])["labels"] == {"berth.owner": "1"}
    assert sorted(v["id"] for v in volumes.list_volumes(state_root)) == sorted([a["id"], b["id"]])
    with pytest.raises(volumes.AmbiguousVolume):
        volumes.inspect(state_root, "data")
    assert volumes.create(state_root, "data", id=a["id"])["created"] == a["created"]  # a re-run job: no-op
    volumes.remove(state_root, a["id"])
    assert not (state_root / "volumes" / a["id"]).exists()
    assert volumes.inspect(state_root, "data")["id"] == b["id"]
    with pytest.raises(volumes.NoSuchVolume):
        volumes.remove(state_root, a["id"])


@pytest.mark.parametrize("bad", ["../x", "", "a" * 129, "-x", "a/b"])
def test_bad_names_and_ids_are_refused(state_root: Path, bad: str):
    with pytest.raises(volumes.InvalidVolume) as e:
        volumes.create(state_root, bad)
    assert e.value.field == "name"
    with pytest.raises(volumes.InvalidVolume) as e:
        volumes.create(state_root, "ok", id=bad or "x")
    assert e.value.field == "id"


def test_mounts_take_ids_never_names(manager: ContainerManager, state_root: Path):
    volumes.create(state_root, "data")
    with pytest.raises(InvalidConfig) as e:
        manager.create("busybox", command=["true"], mounts=["data:/data"])
    assert e.value.field == "mounts" and "not a volume id" in str(e.value)
    assert not (state_root / "volumes" / "data").exists()


def test_in_use_refused_until_the_container_is_gone(manager: ContainerManager, state_root: Path):
    vid = volumes.create(state_root, "keep")["id"]
    c = run(manager, "echo kept > /v/f", name="user", mounts=[f"{vid}:/v"])
    with pytest.raises(volumes.VolumeInUse) as e:
        volumes.remove(state_root, vid)
    assert e.value.code == "volume_in_use" and e.value.field == "volume" and "user" in str(e.value)
    assert (Path(volumes.inspect(state_root, vid)["mountpoint"]) / "f").read_text() == "kept\n"
    manager.remove(c["id"])
    volumes.remove(state_root, vid)
    assert not (state_root / "volumes" / vid).exists()


def test_force_removes_a_volume_a_container_record_still_names(manager: ContainerManager, state_root: Path):
    vid = volumes.create(state_root, "gone")["id"]
    manager.create("busybox", name="holder", command=["true"], mounts=[f"{vid}:/v"])
    volumes.remove(state_root, vid, force=True)
    assert not (state_root / "volumes" / vid).exists()


def test_remove_does_not_follow_symlinks_out_of_the_volume(manager: ContainerManager, state_root: Path,
                                                           tmp_path: Path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "precious").write_text("keep me\n")
    (canary / "sub").mkdir()
    (canary / "sub" / "deep").write_text("deep\n")
    vid = volumes.create(state_root, "evil")["id"]
    # A container plants the links (their targets are host paths, meaningless inside it).
    c = run(manager, f"ln -s {canary} /v/dir-link && ln -s {canary}/precious /v/file-link && mkdir /v/d && "
                     f"ln -s {canary}/sub /v/d/nested && echo planted", mounts=[f"{vid}:/v"])
    assert output(manager, c["id"]) == "planted\n"
    manager.remove(c["id"])
    data = Path(volumes.inspect(state_root, vid)["mountpoint"])
    assert os.readlink(data / "dir-link") == str(canary)
    volumes.remove(state_root, vid)
    assert not (state_root / "volumes" / vid).exists()
    assert (canary / "precious").read_text() == "keep me\n" and (canary / "sub" / "deep").read_text() == "deep\n"


def test_cli_volume_verbs(state_root: Path):
    made = berth(state_root, "volume", "create", "-l", "team=a", "cache")
    assert made.returncode == 0, made.stderr
    vid = made.stdout.strip()
    again = berth(state_root, "volume", "create", "cache")
    assert again.returncode == 125 and "exists already" in again.stderr
    listed = berth(state_root, "volume", "ls", "-q")
    assert listed.stdout.split() == [vid]
    shown = json.loads(berth(state_root, "volume", "inspect", "cache").stdout)
    assert shown[0]["id"] == vid and shown[0]["labels"] == {"team": "a"}
    ran = berth(state_root, "run", "--name", "w", "-v", "cache:/c", "busybox", "sh", "-c", "echo hi > /c/f")
    assert ran.returncode == 0, ran.stderr
    assert (state_root / "volumes" / vid / "_data" / "f").read_text() == "hi\n"
    refused = berth(state_root, "volume", "rm", "cache")
    assert refused.returncode == 125 and "in use by container(s) w" in refused.stderr
    assert berth(state_root, "rm", "w").returncode == 0
    removed = berth(state_root, "volume", "rm", vid[:12])
    assert removed.returncode == 0 and removed.stdout.strip() == vid
    assert berth(state_root, "volume", "ls", "-q").stdout == ""


def test_a_mount_made_before_its_create_job_takes_the_jobs_name(state_root: Path):
    """container.create may run before the volume.create job of the same request (two pool processes)."""
    vid = "ab" * 32
    with volumes.names_lock(state_root):
        data = volumes.ensure_for_mount(state_root, vid)
    (data / "kept").write_text("x")
    made = volumes.create(state_root, "data", id=vid, labels={"k": "v"})
    assert (made["name"], made["labels"]) == ("data", {"k": "v"}) and (data / "kept").read_text() == "x"


def test_a_sized_volume_refuses_writes_past_its_size_and_leaves_nothing(manager: ContainerManager,
                                                                        state_root: Path):
    """issue #10: disk for volumes. A 32 MiB volume is a filesystem of that size: dd of 64 MiB into it
    from a real container stops at ENOSPC; remove unmounts it and deletes its image."""
    vol = volumes.create(state_root, "small", size=32 << 20)
    data = Path(vol["mountpoint"])
    cid = manager.create("busybox:latest", name="filler", mounts=[f"{vol['id']}:/data"],
                         command=["sh", "-c", "dd if=/dev/zero of=/data/fill bs=1M count=64; echo rc=$?"])["id"]
    manager.start(cid)
    manager.wait(cid, timeout=60)
    log = "".join(r["log"] for r in manager.logs(cid))
    assert "No space left on device" in log and "rc=1" in log, log
    assert os.path.getsize(data / "fill") < 32 << 20
    manager.remove(cid, force=True)
    volumes.remove(state_root, vol["id"])
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(data) not in mounts
    assert not data.parent.exists()
    loops = json.loads(os.popen("losetup -J -l 2>/dev/null").read() or '{"loopdevices": []}')["loopdevices"]
    assert not [dev for dev in loops if str(state_root) in (dev.get("back-file") or "")]
