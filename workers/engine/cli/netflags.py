"""The network flags of run/create, Docker's: --network, --network-alias, -p, -P, --dns, --dns-search,
--add-host."""

from __future__ import annotations

import argparse

from ..images.store import ImageStore


def network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", "--net", action="append", metavar="NAME",
                   help="network to join (repeat for more), or none, host, container:NAME")
    p.add_argument("--network-alias", action="append", metavar="NAME", help="another DNS name on user networks")
    p.add_argument("-p", "--publish", action="append", metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                   help="publish a port (bound to 127.0.0.1 unless an address is given)")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish the image's exposed ports")
    p.add_argument("--dns", action="append", metavar="IP")
    p.add_argument("--dns-search", action="append", metavar="DOMAIN")
    p.add_argument("--add-host", action="append", metavar="NAME:IP")


def network_fields(args: argparse.Namespace) -> dict:
    publish = list(args.publish or [])
    if args.publish_all:
        image = ImageStore(args.root).resolve(args.image)
        exposed = (image.config.get("config") or {}).get("ExposedPorts") or {}
        publish += [str(p) for p in sorted(exposed)]
    return {"networks": list(args.network or []), "network_aliases": list(args.network_alias or []),
            "ports": publish, "dns": list(args.dns or []), "dns_search": list(args.dns_search or []),
            "extra_hosts": list(args.add_host or [])}
