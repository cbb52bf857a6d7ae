"""Container verbs (run, create, start, stop, rm, ps, logs).

Placeholder: these need the runtime and the monitor and are added here by the engineer who owns them;
until then each verb says so and exits 125.
"""

from __future__ import annotations

import argparse
import sys

VERBS = ("run", "create", "start", "stop", "rm", "ps", "logs")


def _not_yet(args: argparse.Namespace) -> int:
    print(f"Error: '{args.command}' is not available yet in this build", file=sys.stderr)
    return 125


def register(sub) -> None:
    for verb in VERBS:
        p = sub.add_parser(verb, help=f"{verb} containers (not available yet)")
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_not_yet)
