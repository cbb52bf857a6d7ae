"""Copy between a container's pty master and our stdio (foreground `run` with a terminal
and no --console-socket, as runc does)."""

from __future__ import annotations

import os
import select


def proxy(master: int, stdin: int = 0, stdout: int = 1) -> None:
    """Until the container side closes: stdin -> master, master -> stdout. Raw mode on a tty stdin."""
    saved = None
    if os.isatty(stdin):
        import termios
        import tty

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        try:
            import fcntl
            import struct

            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:
            pass
    fds = [master, stdin]
    try:
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed, the container is done
                    data = b""
                if not data:
                    break
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    fds.remove(stdin)
    finally:
        os.close(master)
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
