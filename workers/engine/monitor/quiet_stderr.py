"""The monitor's stderr, which is monitor.log in the state root: when that disk is full, a print() there would
raise ENOSPC inside the monitor's loop and end it, with every container's logs and exits. A line that cannot be
written is lost instead (what the monitor says about a full disk is also in each container's status)."""

from __future__ import annotations

import os


class QuietStderr:
    """A text stream over fd 2 whose writes never raise (unbuffered: a line is written whole or lost)."""

    def write(self, text: str) -> int:
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 2
