"""Fixtures for the network tests: a ContainerManager on its own state root (busybox imported) whose
containers join the `bridge` network by default, and listing helpers for what networking leaves on the
host. Teardown removes every container through the engine, then dismantles what is left of the root's
networking through the engine (netavark's complete teardown of each network: bridge, chains, isolation
rules; a bridge deleted by hand would leave those), aardvark-dns by its pid file, and the root.

Each test uses its own subnets (10.231.<n>.0/24, n unique per test), so no two tests' networks meet."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.containers.conftest import teardown_root
from workers.engine.containers import ContainerManager
from workers.engine.images.base import ensure_base_images
from workers.engine.images.store import ImageStore
from workers.engine.net import netavark


def _needs() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        netavark.binary()
    except Exception:
        pytest.skip("netavark is not installed")


@pytest.fixture
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerManager]:
    yield from manager_on_own_root(tmp_path_factory, "nt")


def manager_on_own_root(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Iterator[ContainerManager]:
    """A ContainerManager on a new state root with busybox; everything removed after (a host of its own)."""
    _needs()
    root = tmp_path_factory.mktemp(prefix)
    ensure_base_images(ImageStore(root))
    m = ContainerManager(root, default_network="bridge")
    try:
        yield m
    finally:
        cleanup(m)
        teardown_root(root)


def cleanup(m: ContainerManager) -> None:
    for info in m.list(all=True):
        with contextlib.suppress(Exception):
            m.remove(info["id"], force=True)
    with contextlib.suppress(Exception):
        m.net.dismantle()  # netavark's complete teardown of what is left: bridges and their rules together
    pid_file = m.root / "net" / "run" / "aardvark-dns" / "aardvark.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def bridges() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def ports_of(bridge: str) -> set[str]:
    """The host-side veths enslaved to `bridge`."""
    out = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def firewall_rules_mentioning(*needles: str) -> list[str]:
    """iptables (nft backend) rules and chains, and nft rules, that name any of `needles` (subnets, container
    ids, a bridge: the isolation rules name it, netavark_chains)."""
    text = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    text += subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return [ln for ln in text.splitlines() if any(n in ln for n in needles)]


def netavark_chains(subnet: str) -> set[str]:
    """netavark's own chains of one network: NETAVARK-<hash> (the nat table's jump for traffic from `subnet`)
    and its port-forwarding twin NETAVARK-DN-<hash>. Pass them to firewall_rules_mentioning after a teardown:
    an empty chain left behind names neither the subnet nor the bridge."""
    text = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    hashes = {ln.split()[-1].removeprefix("NETAVARK-") for ln in text.splitlines()
              if ln.startswith("-A POSTROUTING") and f"-s {subnet} " in ln and "-j NETAVARK-" in ln}
    return {f"NETAVARK-{h}" for h in hashes} | {f"NETAVARK-DN-{h}" for h in hashes}


def ns_of(m: ContainerManager, ref: str) -> Path:
    """A running container's network namespace, through its init (a start takes its mount off the host)."""
    return Path(f"/proc/{m.inspect(ref)['pid']}/ns/net")


def netns_mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(root / "net"))]


def run_out(m: ContainerManager, ref: str, args: list[str]) -> tuple[int, str]:
    """exec in a running container; (exit code, stdout+stderr)."""
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        code = m.exec(ref, args, stdout=w, stderr=w, stdin=null)
    finally:
        os.close(w)
        os.close(null)
    with os.fdopen(r) as f:
        return code, f.read()
