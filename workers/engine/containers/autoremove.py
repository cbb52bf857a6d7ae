"""`python -m workers.engine.containers.autoremove ROOT ID`: remove an exited auto-remove container.

The monitor spawns it when such a container exits (monitor/exits.py): removing takes unmounts, runtime
deletes and directory trees, which must not stall the monitor's loop, and the CLI that ran `run --rm -d`
has long gone. A supervise pass does the same for one whose remover was lost."""

from __future__ import annotations

import sys

from .errors import ContainerError
from .manager import ContainerManager


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m workers.engine.containers.autoremove ROOT ID", file=sys.stderr)
        return 2
    root, cid = args
    try:
        ContainerManager(root).remove_if_auto(cid)
    except (ContainerError, OSError) as e:
        print(f"berth-autoremove: cannot remove {cid[:12]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
