"""Network verbs, Docker-like: network create|ls|inspect|rm|connect|disconnect|prune, and port (the
flags of run/create are in netflags.py)."""

from __future__ import annotations

import json
import sys

from ..containers import ContainerError
from .containers import EXIT_ERROR, _engine_errors, _manager, _pairs, _print_json


@_engine_errors
def cmd_create(args) -> int:
    net = _manager(args).net.create(args.name, subnet=args.subnet, gateway=args.gateway, internal=args.internal,
                                    labels=_pairs(args.label), dns=not args.disable_dns,
                                    overlap_routes=args.overlap_routes)
    print(net["id"])
    return 0


@_engine_errors
def cmd_ls(args) -> int:
    nets = _manager(args).net.list()
    if args.json:
        _print_json(nets)
        return 0
    if args.quiet:
        print("\n".join(n["id"][:12] for n in nets))
        return 0
    print(f"{'NETWORK ID':<14}{'NAME':<24}{'DRIVER':<10}{'SUBNET':<20}CONTAINERS")
    for n in nets:
        print(f"{n['id'][:12]:<14}{n['name']:<24}{n['driver']:<10}{n['subnet']:<20}{len(n['containers'])}")
    return 0


@_engine_errors
def cmd_inspect(args) -> int:
    m = _manager(args)
    _print_json([m.net.inspect(ref) for ref in args.networks])
    return 0


@_engine_errors
def cmd_rm(args) -> int:
    m = _manager(args)
    rc = 0
    for ref in args.networks:
        try:
            m.remove_network(ref, force=args.force)
            print(ref)
        except ContainerError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


@_engine_errors
def cmd_prune(args) -> int:
    for name in _manager(args).net.prune():
        print(name)
    return 0


@_engine_errors
def cmd_connect(args) -> int:
    _manager(args).connect_network(args.container, args.network, list(args.alias or []))
    return 0


@_engine_errors
def cmd_disconnect(args) -> int:
    _manager(args).disconnect_network(args.container, args.network)
    return 0


@_engine_errors
def cmd_port(args) -> int:
    lines = _manager(args).port(args.container)
    if args.json:
        print(json.dumps(lines))
    else:
        for line in lines:
            print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("network", help="manage networks")
    verbs = p.add_subparsers(dest="network_command", metavar="VERB", required=True)
    c = verbs.add_parser("create", help="create a bridge network")
    c.add_argument("--subnet", help="IPv4 subnet (default: a free /24 of 10.89.0.0/16 that no route of the host "
                                    "overlaps)")
    c.add_argument("--overlap-routes", action="store_true",
                   help="accept a --subnet that overlaps a route the host already has")
    c.add_argument("--gateway")
    c.add_argument("--internal", action="store_true", help="no outbound access")
    c.add_argument("--disable-dns", action="store_true", help="no name resolution between its containers")
    c.add_argument("-d", "--driver", choices=["bridge"], default="bridge")
    c.add_argument("-l", "--label", action="append", metavar="KEY=VALUE")
    c.add_argument("name")
    c.set_defaults(func=cmd_create)
    c = verbs.add_parser("ls", help="list networks")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_ls)
    c = verbs.add_parser("inspect", help="show networks")
    c.add_argument("networks", nargs="+", metavar="NETWORK")
    c.set_defaults(func=cmd_inspect)
    c = verbs.add_parser("rm", help="remove networks")
    c.add_argument("-f", "--force", action="store_true", help="disconnect their containers first")
    c.add_argument("networks", nargs="+", metavar="NETWORK")
    c.set_defaults(func=cmd_rm)
    c = verbs.add_parser("prune", help="remove every network no container uses")
    c.set_defaults(func=cmd_prune)
    for verb, fn in (("connect", cmd_connect), ("disconnect", cmd_disconnect)):
        c = verbs.add_parser(verb, help=f"{verb} a container")
        if verb == "connect":
            c.add_argument("--alias", action="append")
        c.add_argument("network")
        c.add_argument("container")
        c.set_defaults(func=fn)
    p = sub.add_parser("port", help="show a container's published ports")
    p.add_argument("container")
    p.set_defaults(func=cmd_port)
