"""top, stats and cp against real busybox containers; cp against a container that plants symlinks to the host."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from workers.engine.containers import ContainerManager, InvalidConfig
from workers.engine.containers import stats as cstats
from workers.engine.containers.archive import NoSuchPath

pytestmark = pytest.mark.root


def _running(m: ContainerManager, **kw) -> dict:
    c = m.create("busybox", command=["sleep", "1000"], **kw)
    m.start(c["id"])
    return c


def _sh(m: ContainerManager, cid: str, script: str) -> dict:
    s = m.exec_start(cid, ["sh", "-c", script])
    info = m.exec_wait(cid, s["id"], timeout=60)
    assert info["exit_code"] == 0, info
    return info


def _tar(entries: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def _untar(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()}


def _get(m: ContainerManager, cid: str, path: str) -> dict[str, bytes | None]:
    out = io.BytesIO()
    m.get_archive(cid, path, out)
    return _untar(out.getvalue())


def test_top_lists_processes_as_container_and_host_see_them(manager: ContainerManager):
    c = _running(manager)
    s = manager.exec_start(c["id"], ["sleep", "777"])
    top = manager.top(c["id"])
    rows = {r["cmd"]: r for r in top["processes"]}
    assert rows["sleep 1000"]["pid"] == 1 and rows["sleep 1000"]["host_pid"] == manager.inspect(c["id"])["pid"]
    assert rows["sleep 777"]["host_pid"] == s["pid"] and 1 < rows["sleep 777"]["pid"] < 100
    assert rows["sleep 777"]["user"] == "root"


def test_stats_move_with_cpu_and_memory(manager: ContainerManager):
    c = _running(manager, memory=256 * 1024 * 1024)
    pid = manager.inspect(c["id"])["pid"]
    dirs = cstats.cgroup_dirs(pid)
    before = manager.stats_sample(c["id"])
    assert before["memory_limit"] == 256 * 1024 * 1024 and before["pids"] >= 1
    burn = manager.exec_start(c["id"], ["sh", "-c", "while :; do :; done"])
    _sh(manager, c["id"], "head -c 40000000 /dev/zero > /dev/shm/blob")
    deadline = time.monotonic() + 30
    while True:  # until the burner has used a measurable 0.2 s of CPU
        direct_before = cstats.cpu_ns(dirs)
        after = manager.stats_sample(c["id"])
        direct_after = cstats.cpu_ns(dirs)
        if after["cpu_ns"] - before["cpu_ns"] > 200_000_000 or time.monotonic() > deadline:
            break
    # the files read directly bracket the sample
    assert direct_before <= after["cpu_ns"] <= direct_after
    assert after["cpu_ns"] - before["cpu_ns"] > 200_000_000
    usage_file = "memory.usage_in_bytes" if "memory" in dirs else "memory.current"
    raw_usage = int(Path(dirs.get("memory", dirs.get("")), usage_file).read_text())
    assert after["memory"] - before["memory"] >= 35_000_000
    assert after["memory"] <= raw_usage + 4096 * 64
    assert after["pids"] == before["pids"] + 1  # the burner
    rated = cstats.with_rates(before, after)
    assert rated["cpu_percent"] > 0 and 0 < rated["memory_percent"] < 100
    manager.exec_kill(c["id"], burn["id"])


def test_cp_round_trip(manager: ContainerManager):
    c = _running(manager)
    _sh(manager, c["id"], "mkdir -p /srv/app && echo one > /srv/app/a && ln -s a /srv/app/link")
    got = _get(manager, c["id"], "/srv/app")
    assert got["app/a"] == b"one\n" and "app/link" in got and got["app"] is None
    assert manager.put_archive(c["id"], "/srv", _tar({"app/b": b"two", "new/c": b"three"})) >= 3
    s = manager.exec_start(c["id"], ["sh", "-c", "cat /srv/app/a /srv/app/b /srv/new/c"])
    out = b"".join(f.get("data", b"") for f in manager.exec_attach(c["id"], s["id"]))
    assert out == b"one\ntwothree"
    assert {e["name"] for e in manager.list_dir(c["id"], "/srv/app")} == {"a", "b", "link"}
    assert manager.stat_path(c["id"], "/srv/app/link")["type"] == "symlink"
    with pytest.raises(NoSuchPath):
        manager.get_archive(c["id"], "/no/such", io.BytesIO())
    with pytest.raises(InvalidConfig) as e:
        manager.put_archive(c["id"], "relative", _tar({"x": b""}))
    assert e.value.field == "path"


def test_cp_never_follows_a_planted_symlink_out_of_the_container(manager: ContainerManager, tmp_path: Path):
    """The container links to a host directory, absolutely and with `..`: cp reads and writes inside it only."""
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "secret.txt").write_text("host secret")
    c = _running(manager)
    _sh(manager, c["id"], f"ln -s {host} /loot; ln -s ../../../../../../../..{host} /loot2; mkdir /inside; "
                          f"ln -s {host} /inside/evil")
    for path in ("/loot/secret.txt", "/loot2/secret.txt", "/inside/evil/secret.txt"):
        with pytest.raises(NoSuchPath):  # resolved inside the container, where that file does not exist
            manager.get_archive(c["id"], path, io.BytesIO())
    for dest in ("/loot", "/loot2", "/inside/evil"):
        with pytest.raises(NoSuchPath):
            manager.put_archive(c["id"], dest, _tar({"pwned": b"x"}))
    # an archive entry under the planted link replaces the link inside the container, never writes through it
    manager.put_archive(c["id"], "/inside", _tar({"evil/pwned": b"x", "evil/secret.txt": b"overwritten"}))
    assert sorted(os.listdir(host)) == ["secret.txt"] and (host / "secret.txt").read_text() == "host secret"
    assert manager.stat_path(c["id"], "/inside/evil")["type"] == "dir"
    # copying the link itself gives the link, not the host directory's contents
    got = _get(manager, c["id"], "/loot")
    assert list(got) == ["loot"] and got["loot"] is None
