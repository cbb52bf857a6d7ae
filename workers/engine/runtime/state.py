"""Container state on disk (<root>/<id>/state.json) and liveness of its init."""

from __future__ import annotations

import os

from ..timefmt import rfc3339
from . import jsonfast
from .errors import ContainerNotFound

OCI_VERSION = "1.0.2"


def proc_start_time(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def alive(pid: int, start_time: int | None) -> bool:
    if pid <= 0:
        return False
    st = proc_start_time(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start_time is None or st[1] == start_time


def state_dir(root: str, cid: str) -> str:
    return os.path.join(root, cid)


def load(root: str, cid: str) -> dict:
    try:
        with open(os.path.join(root, cid, "state.json"), "rb") as f:
            return jsonfast.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        raise ContainerNotFound(f"container {cid} does not exist") from None
    except ValueError:
        raise ContainerNotFound(f"container {cid} has a corrupt state file") from None


def save(root: str, cid: str, st: dict) -> None:
    d = os.path.join(root, cid)
    tmp = os.path.join(d, "state.json.tmp")
    with open(tmp, "w") as f:
        f.write(jsonfast.dumps(st))
    os.rename(tmp, os.path.join(d, "state.json"))


def write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _now_rfc3339() -> str:
    return rfc3339(digits=9)  # runc writes `created` with nanoseconds


def _rmtree(path: str) -> None:
    """A state dir holds a few plain files: no need for shutil (slow to import)."""
    try:
        for name in os.listdir(path):
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                _rmtree(os.path.join(path, name))
            except FileNotFoundError:
                pass
        os.rmdir(path)
    except FileNotFoundError:
        pass
