"""The host's IPv4 routes, which a network's subnet must not shadow (Docker skips such subnets for its default
pools). Among them are the bridges of other Berth hosts on this machine, whose state roots this one cannot
see: two hosts whose networks took the same subnet would each get half of the traffic meant for the other."""

from __future__ import annotations

import ipaddress
import socket
import struct


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The subnets of the host's own IPv4 addresses and the routes of its main table but the default one, with
    their device (for network create: a netlink dump, addresses of interfaces that are down included)."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        for a in ipr.get_addr(family=socket.AF_INET):
            ip = a.get_attr("IFA_ADDRESS")
            if ip:
                out.append((ipaddress.ip_network(f"{ip}/{a['prefixlen']}", strict=False), _dev(a["index"])))
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = r.get_attr("RTA_DST")
            if dst and r["dst_len"]:
                out.append((ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False), _dev(r.get_attr("RTA_OIF"))))
    return out


def _dev(index: int | None) -> str:
    try:
        return socket.if_indextoname(index) if index else "?"
    except OSError:
        return "?"


def routed_elsewhere(subnet: str, bridge: str) -> tuple[ipaddress.IPv4Network, str] | None:
    """A route of the main table overlapping `subnet` through another device than `bridge`, if any. Read from
    /proc/net/route (the main table, one small file: this is on the start path)."""
    net = ipaddress.ip_network(subnet)
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    for ln in lines:
        fields = ln.split()
        if len(fields) < 8 or fields[0] == bridge:
            continue
        dst, mask = (socket.inet_ntoa(struct.pack("<I", int(x, 16))) for x in (fields[1], fields[7]))
        route = ipaddress.ip_network(f"{dst}/{mask}", strict=False)
        if route.prefixlen and route.overlaps(net):
            return route, fields[0]
    return None
