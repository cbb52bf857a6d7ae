"""OCI hooks: run a program with the container state JSON on stdin."""

from __future__ import annotations

import json
import subprocess

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


def run_hooks_quietly(hooks: list[dict], state: dict, kind: str) -> str | None:
    """poststart/poststop: a failure is reported, not fatal."""
    try:
        run_hooks(hooks, state, kind)
    except RuntimeError_ as e:
        return str(e)
    return None
