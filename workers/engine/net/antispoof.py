"""Address spoofing from inside a container: dropped at the bridge.

A container has CAP_NET_RAW (Docker's default set), so it can write any Ethernet frame: ARP replies that
claim a neighbour's address, or IP packets with a neighbour's source address. netavark does not filter
them; these bridge-family rules do. Every host-side veth of a container (set `ports`) may only send from
its own MAC (set `mac_ok`) and its own IPv4 address (set `ip_ok`), in IP and in ARP. Elements are added at
setup and removed at teardown.

The sets are keyed by the veth's link group, which setup makes unique (GROUP_BASE + the link's index), not
by its name: netavark gives a dead container's veth name to the next container at once, so a name-keyed
entry of the dead one (its teardown not run yet) let the new one send from the old addresses, and its late
teardown deleted the new one's `ports` entry (no filter at all). A group dies with its link, and the kernel
does not give an index again soon: an entry of a dead link matches nothing, and the sweep removes it. Not the
index itself (nft's iface_index type): nft then lists every link of the host in each call to parse it, 6-16
ms per start with a thousand containers; a group is a plain number to it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from pathlib import Path

from .errors import NetworkError

TABLE = "berth_spoofguard"
# older Berths' tables, carried over by ensure(): keyed by interface name, or by interface index
OLD_TABLES = ("berth_spoof", "berth_antispoof")
GROUP_BASE = 0x40000000  # above the small groups an administrator gives links by hand


def _ruleset() -> str:
    # `create`: of two processes that find no table at once, the second's transaction fails (and it looks
    # again) rather than adding the rules a second time
    return f"""
create table bridge {TABLE}
table bridge {TABLE} {{
  set ports {{ type devgroup; }}
  set ip_ok {{ type devgroup . ipv4_addr; }}
  set mac_ok {{ type devgroup . ether_addr; }}
  chain prerouting {{
    type filter hook prerouting priority 0; policy accept;
    iifgroup @ports iifgroup . ether saddr != @mac_ok drop
    iifgroup @ports ether type ip iifgroup . ip saddr != @ip_ok drop
    iifgroup @ports ether type arp iifgroup . arp saddr ip != @ip_ok drop
    iifgroup @ports ether type arp iifgroup . arp saddr ether != @mac_ok drop
  }}
}}
"""


def _nft(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)


_ready = False  # the table is this version's (checked once per process; `nft list` costs a process start)


def _listed(table: str | None = None) -> list[dict] | None:
    """The table's (ours by default) sets as nft lists them (JSON), None when there is no such table."""
    proc = subprocess.run(["nft", "-j", "list", "table", "bridge", table or TABLE], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        return [o["set"] for o in json.loads(proc.stdout)["nftables"] if "set" in o]
    except (ValueError, KeyError, TypeError):
        return []


def _bridge_tables() -> set[str]:
    """The names of the host's bridge-family tables."""
    proc = subprocess.run(["nft", "-j", "list", "tables", "bridge"], capture_output=True, text=True)
    try:
        return {o["table"]["name"] for o in json.loads(proc.stdout)["nftables"] if "table" in o}
    except (ValueError, KeyError, TypeError):
        return set()


def _key(elem: object) -> list:
    return elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]


def _element(set_name: str, key: list) -> str:
    return f"{set_name} {{ {' . '.join(map(str, key))} }}"


def _carried_over(old_table: str, old: list[dict]) -> str:
    """An older table's entries of links that still exist, keyed by their group (given to the link now), and
    the old table deleted: in the same transaction as what it is appended to. nft lists a live link by name
    in both older kinds (a dead one by its index's digits: dropped)."""
    adds = []
    for s in old:
        for elem in s.get("elem", []):
            key = _key(elem)
            index = link_index(key[0]) if isinstance(key[0], str) and not key[0].isdigit() else None
            if index is not None and s.get("name") in ("ports", "ip_ok", "mac_ok"):
                with contextlib.suppress(NetworkError):  # gone meanwhile
                    mark(index)
                    adds.append(f"add element bridge {TABLE} {_element(s['name'], [group(index), *key[1:]])}\n")
    return "".join(adds) + f"delete table bridge {old_table}\n"


def ensure() -> None:
    """The table, made if missing; an older Berth's carried over and removed."""
    global _ready
    if _ready:
        return
    for _ in range(3):  # another process may make the table or carry an old one over meanwhile
        tables = _bridge_tables()  # one nft process on a host that has only this version's table
        script = "" if TABLE in tables else _ruleset()
        for old_table in OLD_TABLES:
            if old_table in tables:
                script += _carried_over(old_table, _listed(old_table) or [])
        proc = _nft(script) if script else None
        if proc is None or proc.returncode == 0:
            _ready = True
            return
    raise NetworkError(f"cannot install the anti-spoofing rules: {proc.stderr.strip()[:300]}")


def group(index: int) -> int:
    """The link group that keys the entries of the link of interface index `index`."""
    return GROUP_BASE + index


def mark(index: int) -> None:
    """Give the link of interface index `index` its group (one netlink request)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            ipr.link("set", index=index, group=group(index))
    except NetlinkError as e:
        raise NetworkError(f"cannot mark interface {index} for the anti-spoofing rules: {e}") from None


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
    inner = subprocess.run(["nsenter", f"--net={netns}", "ip", "-j", "link", "show", iface],
                           capture_output=True, text=True)
    try:
        return socket.if_indextoname(int(json.loads(inner.stdout)[0]["link_index"]))
    except (ValueError, LookupError, TypeError, OSError):
        raise NetworkError(f"cannot find the host side of {iface} in {netns}") from None


def link_index(name: str) -> int | None:
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
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        if socket.if_indextoname(index) != veth:
            return
    except OSError:
        return  # gone already
    with IPRoute() as ipr, contextlib.suppress(NetlinkError):  # gone meanwhile
        ipr.link("del", index=index)


def allow(index: int, mac: str, ip: str, also: str = "") -> None:
    """The entries of the veth of interface index `index`, which is given its group first; `also`: more nft
    lines for the same call (one process per setup, not two)."""
    global _ready
    ensure()
    mark(index)
    g = group(index)
    proc = _nft(f"add element bridge {TABLE} mac_ok {{ {g} . {mac} }}\n"
                f"add element bridge {TABLE} ip_ok {{ {g} . {ip} }}\n"
                f"add element bridge {TABLE} ports {{ {g} }}\n" + also)
    if proc.returncode != 0:
        _ready = False  # the table may have been removed behind our back: the next call makes it again
        raise NetworkError(f"cannot add the anti-spoofing entry for interface {index}: {proc.stderr.strip()[:300]}")


def forget(index: int, mac: str, ip: str) -> None:
    """Remove the entries: in one nft call (a transaction), else each on its own, so that one already gone
    does not keep the others."""
    g = group(index)
    _delete([_element("ports", [g]), _element("mac_ok", [g, mac]), _element("ip_ok", [g, ip])])


def _delete(elems: list[str]) -> None:
    if not elems or _nft("".join(f"delete element bridge {TABLE} {e}\n" for e in elems)).returncode == 0:
        return
    for elem in elems:
        _nft(f"delete element bridge {TABLE} {elem}\n")


def forget_dead() -> None:
    """Entries whose link is gone (a sweep: they were left when a teardown never ran). They match nothing, as
    no link has their group, but they would pile up."""
    dead = []
    for s in _listed() or []:
        for elem in s.get("elem", []):
            key = _key(elem)
            try:
                socket.if_indextoname(int(key[0]) - GROUP_BASE)
            except (OSError, ValueError, TypeError, OverflowError):
                dead.append(_element(s["name"], key))
    _delete(dead)
