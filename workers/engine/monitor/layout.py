"""Where the monitor keeps its files under a host state root (see ARCHITECTURE.md)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEFAULT_STATE_ROOT = "/var/lib/berth"


def state_root(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root or os.environ.get("BERTH_STATE_ROOT") or DEFAULT_STATE_ROOT)


def monitor_dir(root: str | os.PathLike[str]) -> Path:
    return Path(root) / "monitor"


def socket_path(root: str | os.PathLike[str]) -> Path:
    return monitor_dir(root) / "monitor.sock"


def pid_path(root: str | os.PathLike[str]) -> Path:
    return monitor_dir(root) / "monitor.pid"


def records_dir(root: str | os.PathLike[str]) -> Path:
    """The monitor's own per-container records, read back after a monitor restart."""
    return monitor_dir(root) / "containers"


def container_dir(root: str | os.PathLike[str], cid: str) -> Path:
    return Path(root) / "containers" / cid


def exit_path(root: str | os.PathLike[str], cid: str) -> Path:
    return container_dir(root, cid) / "exit.json"


def default_log_path(root: str | os.PathLike[str], cid: str) -> Path:
    return container_dir(root, cid) / "logs" / "container.log"


def default_runtime_cmd(root: str | os.PathLike[str]) -> list[str]:
    """Berth's own runtime, run by the monitor's interpreter, with its state under the root."""
    from workers.engine import runtime

    return [*runtime.command(), "--root", str(Path(root) / "runtime")]


def project_dir() -> Path:
    """The checkout holding the `workers` package (put on PYTHONPATH for child interpreters)."""
    return Path(__file__).resolve().parents[3]


def write_json_atomic(path: str | os.PathLike[str], data: dict, durable: bool = True) -> None:
    """temp + fsync + rename: a reader sees the old file or the whole new one, never half.
    durable=False skips the fsyncs: still atomic for readers, not through a power cut."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a full disk leaves no half-written temp file behind
        raise
    if not durable:
        return
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
