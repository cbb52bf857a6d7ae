"""OCI hooks: run a program with the container state JSON on stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from ..timefmt import rfc3339
from .errors import RuntimeError_


def run_hooks(hooks: list[dict], state: dict, kind: str) -> None:
    """Run each hook in order; the first failure raises RuntimeError_."""
    payload = json.dumps(state).encode()
    for h in hooks:
        path = h.get("path")
        if not path:
            raise RuntimeError_(f"{kind} hook without a path")
        args = h.get("args") or [path]
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        try:
            p = subprocess.run(args, executable=path, input=payload, env=env, timeout=h.get("timeout"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True)
        except subprocess.TimeoutExpired:
            raise RuntimeError_(f"{kind} hook {path} timed out") from None
        except OSError as e:
            raise RuntimeError_(f"{kind} hook {path}: {e.strerror}") from None
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError_(f"{kind} hook {path} exited with status {p.returncode}" + (f": {err[-1]}" if err else ""))


def warn_on_stderr(msg: str) -> None:
    """A warning line in runc's log format (the CLI's errors use the same one with level=error)."""
    when = rfc3339()
    esc = " ".join(msg.splitlines()).replace("\\", "\\\\").replace('"', '\\"')
    try:
        sys.stderr.write(f'time="{when}" level=warning msg="{esc}"\n')
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # no stderr (closed or None): the warning is still returned to the caller


def run_hooks_quietly(hooks: list[dict], state: dict, kind: str,
                      warn: Callable[[str], None] = warn_on_stderr) -> list[str]:
    """poststart/poststop: the spec says a failing hook is a warning and the remaining hooks still run.
    Every hook runs; each failure is passed to `warn` and returned."""
    warnings = []
    for h in hooks:
        try:
            run_hooks([h], state, kind)
        except RuntimeError_ as e:
            warnings.append(str(e))
            warn(str(e))
    return warnings
