"""IPAM and network records: file-locked, never an address twice, kept across restarts, freed on remove."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from workers.engine.net import NetworkInUse
from workers.engine.net.errors import InvalidConfig, NetworkNameTaken
from workers.engine.net.manager import NetworkManager
from workers.engine.net.store import NetworkStore


def _grab(root: str, n: int, q) -> None:
    store = NetworkStore(root)
    q.put([store.allocate("pool", f"{os.getpid()}-{i}")[1] for i in range(n)])


@pytest.fixture
def root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (host addresses are read over netlink)")
    return tmp_path


def test_concurrent_allocations_never_hand_out_an_address_twice(root):
    NetworkStore(root).create("pool", subnet="10.231.40.0/24")
    q = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_grab, args=(str(root), 30, q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [ip for _ in procs for ip in q.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
    assert len(got) == 120 and len(set(got)) == 120
    assert "10.231.40.1" not in got  # the gateway
    assert len(NetworkStore(root).get("pool")["allocations"]) == 120  # a new store (a restart) sees them


def test_records_are_parsed_once_yet_a_change_behind_the_store_is_seen(root):
    """The store keeps each record's parse (a create reads networks ~7 times) and compares the file's bytes:
    an edit that keeps the inode, the size and the mtime (another process's save, a coarse clock) is seen,
    and what a caller changes in a returned record is its own."""
    store = NetworkStore(root)
    rec = store.create("n", subnet="10.231.44.0/24")
    a = store.allocate("n", "c" * 64)[1]
    got = store.get("n")
    got["allocations"]["10.231.44.200"] = "x"
    got["labels"]["k"] = "v"
    assert store.get("n")["allocations"] == {a: "c" * 64} and store.get("n")["labels"] == {}
    path = store.dir / f"{rec['id']}.json"
    before = os.stat(path)
    with open(path, "r+b") as f:  # in place: same inode, same size
        raw = f.read()
        f.seek(0)
        f.write(raw.replace(b"c" * 64, b"d" * 64))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert store.get("n")["allocations"] == {a: "d" * 64}
    assert NetworkStore(root).allocate("n", "e" * 64)[1] != a


def test_release_frees_and_the_same_container_keeps_its_address(root):
    store = NetworkStore(root)
    store.create("n", subnet="10.231.41.0/29")
    a = store.allocate("n", "c1")[1]
    assert store.allocate("n", "c1")[1] == a
    ips = {store.allocate("n", f"c{i}")[1] for i in range(2, 6)}
    with pytest.raises(InvalidConfig, match="no free address"):
        store.allocate("n", "c9")
    store.release("n", "c3")
    assert store.allocate("n", "c9")[1] in ips


def test_names_subnets_and_reserved_words(root):
    store = NetworkStore(root)
    store.create("one", subnet="10.231.42.0/24")
    with pytest.raises(NetworkNameTaken):
        store.create("one", subnet="10.231.43.0/24")
    with pytest.raises(InvalidConfig) as e:
        store.create("two", subnet="10.231.42.128/25")
    assert e.value.field == "subnet"
    for bad in ("host", "none", "../x", ""):
        with pytest.raises(InvalidConfig) as e:
            store.create(bad)
        assert e.value.field == "name"
    with pytest.raises(InvalidConfig) as e:
        store.create("three", subnet="10.231.44.0/24", gateway="10.231.45.1")
    assert e.value.field == "gateway"
    auto = store.create("auto")
    assert auto["subnet"].startswith("10.89.") and auto["gateway"].endswith(".1")


def test_the_default_bridge_holds_a_thousand_containers(root):
    """Every container given no network joins `bridge`: a busy host (issue 16: 1,000 idle containers) must
    not run out of addresses at the 254th, as a /24 would."""
    store = NetworkStore(root)
    rec = store.ensure_default()
    assert rec["subnet"].endswith("/20") and rec["subnet"].startswith("10.8")  # apart from 10.89 and podman's 10.88
    got = {store.allocate("bridge", f"c{i}")[1] for i in range(1000)}
    assert len(got) == 1000 and rec["gateway"] not in got
    # a tenant's own default bridge (the control plane's u<id>.bridge) likewise; another network stays a /24
    tenant = store.create("u1.bridge", default_bridge=True)
    assert tenant["subnet"].endswith("/20") and store.create("u1.app")["subnet"].endswith("/24")


def test_remove_in_use_refused_and_reconcile_frees_gone_containers(root):
    nm = NetworkManager(root)
    nm.create("busy", subnet="10.231.46.0/24")
    nm.prepare("a" * 64, "ghost", {"networks": ["busy"]}, resolve=lambda r: r)
    with pytest.raises(NetworkInUse):
        nm.remove("busy")
    assert nm.inspect("busy")["containers"]["a" * 64]["ip"] == "10.231.46.2"
    done = nm.reconcile(live=set())  # the container is gone (removed while the worker was down)
    assert done["containers"] == ["a" * 64]
    assert nm.store.get("busy")["allocations"] == {}
    assert not (root / "net" / "containers" / ("a" * 64)).exists()
    nm.remove("busy")
    assert nm.list() == []
