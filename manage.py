#!/usr/bin/env python
"""Django's command-line utility for Berth (migrate, berth_run, createsuperuser, ...)."""

import os
import sys


def _root_flag(argv: list[str]) -> str | None:
    """`berth_run --root DIR` must set BERTH_STATE_ROOT before settings load (key, database live there)."""
    for i, arg in enumerate(argv):
        if arg == "--root" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--root="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    if len(sys.argv) > 1 and sys.argv[1] == "berth_run":
        root = _root_flag(sys.argv[2:])
        if root:
            os.environ["BERTH_STATE_ROOT"] = os.path.abspath(root)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
