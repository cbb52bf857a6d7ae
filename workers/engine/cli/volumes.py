"""Volume verbs, podman-like: volume create, ls, rm, inspect. Volumes are named by id, unique id prefix,
or a name that only one volume has."""

from __future__ import annotations

import json
import sys

from ..containers import volumes
from ..containers.errors import ContainerError

EXIT_ERROR = 125


def _labels(items: list[str] | None) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items or [])


def cmd_create(args) -> int:
    if any(v["name"] == args.name for v in volumes.list_volumes(args.root)):
        print(f"Error: a volume named {args.name} exists already (berth volume ls)", file=sys.stderr)
        return EXIT_ERROR
    print(volumes.create(args.root, args.name, labels=_labels(args.label))["id"])
    return 0


def cmd_ls(args) -> int:
    found = volumes.list_volumes(args.root)
    if args.json or args.ls_json:
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.quiet:
        for v in found:
            print(v["id"])
    else:
        print(f"{'VOLUME ID':<14}{'NAME':<30}CREATED")
        for v in found:
            print(f"{v['id'][:12]:<14}{v['name'][:29]:<30}{v['created'] or ''}")
    return 0


def cmd_inspect(args) -> int:
    out, rc = [], 0
    for ref in args.volumes:
        try:
            out.append(volumes.inspect(args.root, ref))
        except ContainerError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = EXIT_ERROR
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return rc


def cmd_rm(args) -> int:
    rc = 0
    for ref in args.volumes:
        try:
            print(volumes.remove(args.root, ref, force=args.force)["id"])
        except ContainerError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


def register(sub) -> None:
    vol = sub.add_parser("volume", help="manage named volumes").add_subparsers(dest="volume_command",
                                                                               metavar="VERB", required=True)
    p = vol.add_parser("create", help="create a volume")
    p.add_argument("-l", "--label", action="append", metavar="KEY=VALUE")
    p.add_argument("name")
    p.set_defaults(func=cmd_create)

    p = vol.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--json", dest="ls_json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = vol.add_parser("inspect", help="show volumes as JSON")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_inspect)

    p = vol.add_parser("rm", help="remove volumes (refused while a container uses one, unless --force)")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_rm)
