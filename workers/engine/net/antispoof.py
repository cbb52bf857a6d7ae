"""Address spoofing from inside a container: dropped at the bridge.

A container has CAP_NET_RAW (Docker's default set), so it can write any Ethernet frame: ARP replies that
claim a neighbour's address, or IP packets with a neighbour's source address. netavark does not filter
them; these bridge-family rules do. Every host-side veth of a container (set `ports`) may only send from
its own MAC (set `mac_ok`) and its own IPv4 address (set `ip_ok`), in IP and in ARP. Elements are added at
setup and removed at teardown (veth names are reused by netavark, so a stale element would be wrong)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

from .errors import NetworkError

TABLE = "berth_spoof"
RULESET = f"""
table bridge {TABLE} {{
  set ports {{ type ifname; }}
  set ip_ok {{ type ifname . ipv4_addr; }}
  set mac_ok {{ type ifname . ether_addr; }}
  chain prerouting {{
    type filter hook prerouting priority 0; policy accept;
    iifname @ports iifname . ether saddr != @mac_ok drop
    iifname @ports ether type ip iifname . ip saddr != @ip_ok drop
    iifname @ports ether type arp iifname . arp saddr ip != @ip_ok drop
    iifname @ports ether type arp iifname . arp saddr ether != @mac_ok drop
  }}
}}
"""


def _nft(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)


_ready = False  # the table exists (checked once per process; `nft list` costs a process start)


def ensure() -> None:
    global _ready
    if _ready:
        return
    if subprocess.run(["nft", "list", "table", "bridge", TABLE], capture_output=True).returncode != 0:
        proc = _nft(RULESET)
        if proc.returncode != 0:
            raise NetworkError(f"cannot install the anti-spoofing rules: {proc.stderr.strip()[:300]}")
    _ready = True


def bridge_ports(bridge: str) -> set[str]:
    """The interfaces enslaved to `bridge`, as sysfs lists them (a directory read: a netlink dump of every
    link on a busy host, decoded by pyroute2, cost 100-180 ms per call)."""
    try:
        return set(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except FileNotFoundError:
        return set()


def host_veth(netns: Path, iface: str) -> str:
    """The host-side name of the veth whose container end is `iface` in `netns`: its peer's index, asked inside
    the namespace for that one link, named by the kernel (if_indextoname). For when the bridge's ports before
    and after the setup (bridge_ports, a sysfs read) do not tell it; never a dump of every link of the host,
    which cost half of a start at 150 containers on one bridge (bench/scale.py)."""
    import socket

    inner = subprocess.run(["nsenter", f"--net={netns}", "ip", "-j", "link", "show", iface],
                           capture_output=True, text=True)
    try:
        return socket.if_indextoname(int(json.loads(inner.stdout)[0]["link_index"]))
    except (ValueError, LookupError, TypeError, OSError):
        raise NetworkError(f"cannot find the host side of {iface} in {netns}") from None


def link_index(name: str) -> int | None:
    import socket

    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def unplug(veth: str, index: int) -> None:
    """Delete the host end of a container's veth pair: the link of that index, if it still has that name. By
    index, in one netlink request: the kernel does not give an index again soon, so another container's link
    that took the name since is never the one deleted. With its namespace gone, the kernel deletes the pair
    only once it has freed the namespace, asynchronously, and until then netavark's teardown sees a port left
    on the bridge and keeps the bridge and the network's rules."""
    import socket

    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        if socket.if_indextoname(index) != veth:
            return
    except OSError:
        return  # gone already
    with IPRoute() as ipr, contextlib.suppress(NetlinkError):  # gone meanwhile
        ipr.link("del", index=index)


def allow(veth: str, mac: str, ip: str, also: str = "") -> None:
    """The veth's entries; `also`: more nft lines for the same call (one process per setup, not two)."""
    global _ready
    ensure()
    proc = _nft(f'add element bridge {TABLE} mac_ok {{ "{veth}" . {mac} }}\n'
                f'add element bridge {TABLE} ip_ok {{ "{veth}" . {ip} }}\n'
                f'add element bridge {TABLE} ports {{ "{veth}" }}\n' + also)
    if proc.returncode != 0:
        _ready = False  # the table may have been removed behind our back: the next call makes it again
        raise NetworkError(f"cannot add the anti-spoofing entry for {veth}: {proc.stderr.strip()[:300]}")


def forget(veth: str, mac: str, ip: str) -> None:
    """Remove the entries: in one nft call (a transaction), else each on its own, so that one already gone
    does not keep the others."""
    elems = [f'ports {{ "{veth}" }}', f'mac_ok {{ "{veth}" . {mac} }}', f'ip_ok {{ "{veth}" . {ip} }}']
    if _nft("".join(f"delete element bridge {TABLE} {e}\n" for e in elems)).returncode == 0:
        return
    for elem in elems:
        _nft(f"delete element bridge {TABLE} {elem}\n")


def forget_network(subnet: str) -> None:
    """Entries of containers of a network that is gone or empty (a sweep; no live container is on it): every
    (veth, address) in `subnet`, and the veth's other entries when no interface has its name any more. Such
    entries were left when a teardown never ran; veth names come back (netavark counts from veth0), and a
    stale entry would let the next container on that veth send from the old address."""
    import ipaddress

    listed = subprocess.run(["nft", "-j", "list", "set", "bridge", TABLE, "ip_ok"], capture_output=True, text=True)
    try:
        sets = [o["set"] for o in json.loads(listed.stdout)["nftables"] if "set" in o]
        elems = [e["concat"] for s in sets for e in s.get("elem", []) if isinstance(e, dict) and "concat" in e]
    except (ValueError, KeyError, TypeError):
        return
    net = ipaddress.ip_network(subnet)
    stale = [(veth, ip) for veth, ip in elems if ipaddress.ip_address(ip) in net]
    for veth, ip in stale:
        _nft(f'delete element bridge {TABLE} ip_ok {{ "{veth}" . {ip} }}\n')
    for veth in {v for v, _ in stale if not os.path.exists(f"/sys/class/net/{v}")}:
        _nft(f'delete element bridge {TABLE} ports {{ "{veth}" }}\n')
        macs = subprocess.run(["nft", "-j", "list", "set", "bridge", TABLE, "mac_ok"], capture_output=True, text=True)
        try:
            for o in json.loads(macs.stdout)["nftables"]:
                for e in o.get("set", {}).get("elem", []):
                    if isinstance(e, dict) and e.get("concat", [None])[0] == veth:
                        _nft(f'delete element bridge {TABLE} mac_ok {{ "{veth}" . {e["concat"][1]} }}\n')
        except (ValueError, KeyError, TypeError):
            pass
