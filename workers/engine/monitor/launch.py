"""Starting a monitor: always as a child of the host's holder (see holder.py), never on its own, so
that the containers it starts reparent to the holder if it dies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from workers.engine.monitor import layout

HOLDER_SCRIPT = Path(__file__).with_name("holder.py")


def holder_socket(root: Path) -> Path:
    return layout.monitor_dir(root) / "holder.sock"


def holder_pid_path(root: Path) -> Path:
    return layout.monitor_dir(root) / "holder.pid"


def _ask_holder(root: Path, env: dict[str, str]) -> dict | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(str(holder_socket(root)))
        sock.sendall((json.dumps({"op": "spawn", "env": env}) + "\n").encode())
        line = sock.makefile("rb").readline()
        return json.loads(line) if line else None
    except OSError:
        return None
    finally:
        sock.close()


def _start_holder(root: Path) -> None:
    """A detached holder (own session, no stdio of ours); it starts a monitor at once."""
    mdir = layout.monitor_dir(root)
    mdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(layout.project_dir()), env.get("PYTHONPATH")]))
    with open(mdir / "holder.log", "ab") as log:
        # -S: no site packages; the holder needs the standard library only (a smaller interpreter)
        subprocess.Popen([sys.executable, "-S", str(HOLDER_SCRIPT), "--root", str(root)], cwd="/",
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                         start_new_session=True, close_fds=True)


def ensure_monitor(root: str | os.PathLike[str], timeout: float = 30.0) -> int:
    """Make sure a holder runs for `root` and has a monitor; 0 on success, 1 if it could not."""
    root = Path(root).resolve()
    env = {k: v for k, v in os.environ.items() if k.startswith("BERTH_")}
    deadline = time.monotonic() + timeout
    started = 0.0
    while time.monotonic() < deadline:
        reply = _ask_holder(root, env)
        if reply and reply.get("monitor"):
            return 0
        if time.monotonic() - started > 2.0:  # again if one that was just ending held the lock
            _start_holder(root)
            started = time.monotonic()
        time.sleep(0.02)
    return 1
