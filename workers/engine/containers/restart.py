"""Restart policies (Docker's semantics) and the backoff between policy restarts."""

from __future__ import annotations

from .config import parse_restart_policy

BACKOFF_START = 0.1  # seconds before the first policy restart; doubles per restart
BACKOFF_MAX = 10.0


def should_restart(policy: str, exit_code: int | None, restart_count: int, stopped_by_user: bool) -> bool:
    """Whether an exited container is to be started again by its policy."""
    name, max_retries = parse_restart_policy(policy)
    if stopped_by_user or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    # on-failure[:N]: only a non-zero exit, at most N restarts (no N: no limit)
    if exit_code == 0:
        return False
    return max_retries is None or restart_count < max_retries


def backoff(restart_count: int) -> float:
    """Delay before restart number restart_count+1: 0.1 s, 0.2 s, 0.4 s, ... up to 10 s."""
    return min(BACKOFF_MAX, BACKOFF_START * (2 ** restart_count))


def describe(policy: str, restart_count: int) -> str:
    return f"restarted by policy {parse_restart_policy(policy)[0]} ({restart_count})"
