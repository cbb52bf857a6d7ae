"""`python -m workers.engine.monitor [--root DIR] [--foreground]`: start the per-host monitor.

Without --foreground it detaches (double fork + setsid) and returns once the daemon listens,
or at once if a monitor already serves that state root."""

from __future__ import annotations

import argparse
import sys

from workers.engine.monitor import layout
from workers.engine.monitor.daemon import daemonize, run_foreground


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="berth-monitor", description=__doc__)
    parser.add_argument("--root", default=None, help="host state root (default $BERTH_STATE_ROOT or /var/lib/berth)")
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    root = layout.state_root(args.root)
    if args.foreground:
        return run_foreground(root)
    code = daemonize(root)
    if code:
        print(f"berth-monitor: failed to start; see {layout.monitor_dir(root) / 'monitor.log'}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
