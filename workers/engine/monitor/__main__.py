"""`python -m workers.engine.monitor [--root DIR] [--foreground]`: start the per-host monitor.

Without --foreground it makes sure the host's holder runs (detached, see holder.py) and that the
holder has started a monitor, then returns. --foreground runs a monitor in this process (the
holder starts its monitors that way)."""

from __future__ import annotations

import argparse
import sys

from workers.engine.monitor import layout
from workers.engine.monitor.daemon import run_foreground
from workers.engine.monitor.launch import ensure_monitor
from workers.engine.monitor.quiet_stderr import QuietStderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="berth-monitor", description=__doc__)
    parser.add_argument("--root", default=None, help="host state root (default $BERTH_STATE_ROOT or /var/lib/berth)")
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    root = layout.state_root(args.root)
    if args.foreground:
        sys.stderr = QuietStderr()  # monitor.log may sit on a full disk: a lost line, not a dead monitor
        return run_foreground(root)
    code = ensure_monitor(root)
    if code:
        print(f"berth-monitor: failed to start; see {layout.monitor_dir(root) / 'monitor.log'} and holder.log", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
