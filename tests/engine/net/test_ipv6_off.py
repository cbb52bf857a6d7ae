"""IPv6 is off on a container's interfaces on Berth's (IPv4-only) networks, and on their host ends: a
container's eth0 neither floods its neighbours with its own IPv6 chatter nor takes a neighbour's forged
router advertisement (CVE-2020-13401); its loopback keeps ::1."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.engine.net.conftest import ns_of, run_out
from tests.engine.net.frames import send_router_advert

SLEEP = ["sleep", "300"]
PREFIX = "fd42:b17:7:1::"


def _ipv6_of(netns: Path) -> tuple[str, str]:
    """(addresses, routes) of IPv6 in `netns`, as `ip` lists them."""
    def ip(*args: str) -> str:
        return subprocess.run(["nsenter", f"--net={netns}", "ip", "-6", *args], capture_output=True, text=True,
                              timeout=30).stdout
    return ip("addr", "show"), ip("route", "show")


def _took_the_advert(netns: Path, wait: float) -> bool:
    """Whether `netns` configured an address in PREFIX or a default route from the advert within `wait` s."""
    deadline = time.monotonic() + wait
    while True:
        addrs, routes = _ipv6_of(netns)
        if PREFIX.rstrip(":") in addrs or "default" in routes:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def test_a_container_sees_ipv6_only_on_its_loopback_and_its_host_end_has_none(mgr):
    mgr.net.create("v4only", subnet="10.231.28.0/24")
    mgr.create("busybox", name="c", command=SLEEP, networks=["v4only"])
    mgr.start("c")
    code, out = run_out(mgr, "c", ["cat", "/proc/net/if_inet6", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"])
    assert code == 0, out
    *addrs, eth0_off = out.split("\n")[:-1] if out.endswith("\n") else out.split("\n")
    assert [a.split()[-1] for a in addrs] == ["lo"] and addrs[0].startswith("0" * 31 + "1"), out  # ::1 only
    assert eth0_off.strip() == "1"
    st = mgr.net._load(mgr.inspect("c")["id"])
    veth = next(iter(st["attachments"].values()))["veth"]
    assert Path(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6").read_text().strip() == "1"
    with open("/proc/net/if_inet6") as f:
        assert not [line for line in f if line.split()[-1] == veth]


def test_a_forged_router_advert_from_a_neighbour_configures_nothing(mgr):
    """The attack: a container writes router advertisements (CAP_NET_RAW is in the default set) to every
    node of its network. The victim takes neither the prefix nor the route. The control, a container whose
    eth0 has IPv6 switched back on from the host, takes both: the advert is one a kernel accepts."""
    mgr.net.create("ra", subnet="10.231.29.0/24")
    for n in ("attacker", "victim", "control"):
        mgr.create("busybox", name=n, command=SLEEP, networks=["ra"])
        mgr.start(n)
    control = ns_of(mgr, "control")
    subprocess.run(["nsenter", f"--net={control}", "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"],
                   check=True, timeout=30)
    time.sleep(0.2)  # its link-local address first: an advert is taken on an interface with IPv6 up
    send_router_advert(ns_of(mgr, "attacker"), src_mac=mgr.inspect("attacker")["network"]["mac"], prefix=PREFIX)
    assert _took_the_advert(control, wait=10)  # the control
    assert not _took_the_advert(ns_of(mgr, "victim"), wait=1)
