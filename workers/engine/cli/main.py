"""Entry point: global flags (--root, --json), then the verbs each cli module registers."""

from __future__ import annotations

import argparse
import os
import sys

from ..images.errors import ImageError
from . import containers, images, networks, registry, volumes, way_in

EXIT_ERROR = 125  # podman's code for an error of the engine itself


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berth", description="Berth container engine (host command line)")
    parser.add_argument("--root", default=os.environ.get("BERTH_STATE_ROOT", "/var/lib/berth"),
                        help="state root (default: $BERTH_STATE_ROOT or /var/lib/berth)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    images.register(sub)
    registry.register(sub)
    registry.register_build(sub)
    containers.register(sub)
    volumes.register(sub)
    networks.register(sub)
    way_in.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ImageError, OSError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
