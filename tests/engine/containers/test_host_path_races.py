"""The attack of issue #10: a running container swaps its own files and directories for symlinks to a
root-only file and directory of the host, as fast as the kernel lets it (renameat2 RENAME_EXCHANGE in a
loop), while the host exports and commits it again and again. No byte of the host's canary may reach the
export stream or the committed layer, and the host canary stays as it was."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tarfile
from pathlib import Path

import pytest

from workers.engine.containers import ContainerManager
from workers.engine.images.compression import decompressed
from workers.engine.images.store import ImageStore

pytestmark = pytest.mark.root

PAIRS = 4


@pytest.fixture
def canary(tmp_path: Path) -> tuple[Path, bytes]:
    """A root-only directory holding a root-only file with a unique token."""
    d = tmp_path / "canary-dir"
    d.mkdir(mode=0o700)
    token = b"HOST-CANARY-" + secrets.token_hex(16).encode()
    f = d / "secret"
    f.write_bytes(token * 64)
    f.chmod(0o600)
    return d, token


def _start_swapping(manager: ContainerManager, state_root: Path, swapper: Path, canary_dir: Path) -> str:
    secret = canary_dir / "secret"
    script = ["cd /race"]
    for i in range(PAIRS):
        script += [f"echo harmless > f{i}", f"ln -s {secret} f{i}.lnk", f"/swap f{i} f{i}.lnk &",
                   f"mkdir d{i}", f"echo harmless > d{i}/secret", f"ln -s {canary_dir} d{i}.lnk",
                   f"/swap d{i} d{i}.lnk &"]
    script += ["echo swapping", "wait"]
    cid = manager.create("busybox:latest", name="racer", command=["sh", "-c", "\n".join(script)])["id"]
    upper = Path(ImageStore(state_root)._container(state_root / "containers" / cid)["upperdir"])
    shutil.copy(swapper, upper / "swap")
    (upper / "race").mkdir()
    manager.start(cid)
    # the line comes after every swapper was started; follow ends only if the container stops
    for rec in manager.logs(cid, follow=True):
        if rec["log"].strip() == "swapping":
            break
    assert manager.inspect(cid)["state"] == "running", list(manager.logs(cid))
    return cid


def _layer_bytes(store: ImageStore, ref: str) -> bytes:
    """The committed (top) layer of `ref`, uncompressed."""
    top = store.resolve(ref).manifest["layers"][-1]
    with open(store.blob_path(top["digest"]), "rb") as raw:
        return decompressed(raw, "layer")[1].read()


def test_export_and_commit_never_read_through_swapped_links(manager: ContainerManager, state_root: Path,
                                                            swapper: Path, canary):
    canary_dir, token = canary
    before = (canary_dir / "secret").read_bytes()
    cid = _start_swapping(manager, state_root, swapper, canary_dir)
    store = ImageStore(state_root)
    exported_entries = 0
    for round_ in range(30):
        buf = io.BytesIO()
        manager.export(cid, buf)
        data = buf.getvalue()
        assert data.count(token) == 0, f"export {round_} carried the host canary"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        exported_entries += sum(1 for n in names if n.startswith("race/"))
        if round_ % 3 == 0:
            manager.commit(cid, f"racer:{round_}")
            assert _layer_bytes(store, f"racer:{round_}").count(token) == 0, f"commit {round_} carried the canary"
    assert exported_entries > 0  # the racing files themselves were exported (the walk did reach them)
    assert manager.inspect(cid)["state"] == "running"  # the swapping went on all along
    assert (canary_dir / "secret").read_bytes() == before
    assert os.stat(canary_dir / "secret").st_mode & 0o777 == 0o600


def _symlink_image(store: ImageStore, tmp: Path, ref: str, links: dict[str, str]) -> None:
    """An image of busybox's /bin plus the given symlinks (name -> target), imported as `ref`."""
    tar_path = tmp / f"{ref.replace(':', '-')}.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        info = tarfile.TarInfo("bin")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        tar.add(shutil.which("busybox") or "/bin/busybox", "bin/sh")
    store.import_tarball(str(tar_path), ref, changes=['CMD ["/bin/sh"]'])


def test_user_lookup_stays_inside_an_image_whose_etc_links_to_the_hosts(manager: ContainerManager,
                                                                         state_root: Path, tmp_path: Path):
    host_users = {line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines() if ":" in line}
    assert "daemon" in host_users  # the host has it: the old lookup answered with the host's uid 1
    _symlink_image(ImageStore(state_root), tmp_path, "etc-link:1", {"etc": "/etc"})
    from workers.engine.containers.errors import InvalidConfig

    with pytest.raises(InvalidConfig) as refused:
        manager.create("etc-link:1", name="oracle", user="daemon")
    assert refused.value.field == "user" and "not in /etc/passwd of image etc-link:1" in str(refused.value)
    # a numeric user needs no lookup and still works: its gid defaults to the uid, not the host's entry
    cid = manager.create("etc-link:1", name="numeric", user="1")["id"]
    spec = json.loads((state_root / "containers" / cid / "bundle" / "config.json").read_text())
    assert spec["process"]["user"] == {"uid": 1, "gid": 1}


def test_workdir_through_an_image_link_is_made_inside_the_image(manager: ContainerManager, state_root: Path,
                                                                tmp_path: Path, canary):
    canary_dir, _ = canary
    before = sorted(os.listdir(canary_dir))
    _symlink_image(ImageStore(state_root), tmp_path, "app-link:1", {"app": str(canary_dir)})
    cid = manager.create("app-link:1", name="wd", workdir="/app/sub")["id"]
    assert sorted(os.listdir(canary_dir)) == before  # nothing made on the host
    upper = Path(ImageStore(state_root)._container(state_root / "containers" / cid)["upperdir"])
    made = upper / str(canary_dir).lstrip("/") / "sub"
    assert made.is_dir() and not made.is_symlink()  # /app -> <dir> resolved inside the image, as Docker does


def test_tenant_bind_source_through_a_link_under_the_allowed_root_is_refused(manager: ContainerManager,
                                                                             tmp_path: Path, canary):
    """A tenant allowed to bind-mount under a shared root, who can write there (from another container),
    plants `root/escape -> <host dir>` and asks for `root/escape`: refused at create; and a legit source
    swapped for such a link after create is refused at start, never mounted."""
    canary_dir, token = canary
    shared = tmp_path / "shared-root"
    (shared / "data").mkdir(parents=True)
    (shared / "data" / "note").write_text("tenant data\n")
    (shared / "escape").symlink_to(canary_dir)
    from workers.engine.containers.errors import InvalidConfig

    with pytest.raises(InvalidConfig) as refused:
        manager.create("busybox:latest", name="escaper", mounts=[f"{shared}/escape:/mnt"],
                       bind_roots=[str(shared)], command=["cat", "/mnt/secret"])
    assert refused.value.field == "mounts" and "symbolic link" in str(refused.value)
    with pytest.raises(InvalidConfig):
        manager.create("busybox:latest", name="outsider", mounts=[f"{canary_dir}:/mnt"], bind_roots=[str(shared)])

    ok = manager.create("busybox:latest", name="legit", mounts=[f"{shared}/data:/mnt:ro"],
                        bind_roots=[str(shared)], command=["cat", "/mnt/note"])["id"]
    manager.start(ok)
    assert manager.wait(ok, timeout=30)["exit_code"] == 0
    assert "tenant data" in "".join(r["log"] for r in manager.logs(ok))

    late = manager.create("busybox:latest", name="late", mounts=[f"{shared}/data:/mnt"], bind_roots=[str(shared)],
                          command=["sh", "-c", "cat /mnt/secret; ls /mnt"])["id"]
    (shared / "data").rename(shared / "data.old")
    (shared / "data").symlink_to(canary_dir)  # swapped in after the create's check
    with contextlib.suppress(Exception):
        manager.start(late)
        manager.wait(late, timeout=30)
    assert token.decode() not in "".join(r["log"] for r in manager.logs(late))
    assert manager.inspect(late)["state"] != "running"
