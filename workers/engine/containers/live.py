"""A running container seen from the host: top, stats and cp (ContainerManager mixin)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import BinaryIO

from . import archive as _archive
from . import states as _states
from . import stats as _stats
from . import top as _top
from .errors import ContainerError, InvalidState


class LiveMixin:
    """Part of ContainerManager: top, stats, stat_path/list_dir/get_archive/put_archive."""

    def _running_pid(self, ref: str, what: str) -> tuple[dict, int]:
        rec = self._current(self._resolve(ref))
        if rec["state"] not in (_states.RUNNING, _states.PAUSED) or not rec.get("pid"):
            raise InvalidState(f"container {rec['name']} is {rec['state']}: {what} needs a running container")
        return rec, int(rec["pid"])

    def top(self, ref: str) -> dict:
        """{"titles", "processes": [{"pid", "ppid", "host_pid", "host_ppid", "uid", "user", "time", "cmd"}]}"""
        rec, pid = self._running_pid(ref, "top")
        users = self._users_of(rec)
        return {"titles": _top.TITLES, "processes": _top.processes(pid, users)}

    def _users_of(self, rec: dict) -> dict[int, str]:
        """uid -> name from the container's own /etc/passwd (its merged view)."""
        import json

        from workers.engine.images.merged import View

        out: dict[int, str] = {}
        with contextlib.suppress(OSError, ValueError, KeyError, ContainerError):  # ids stay numbers then
            info = json.loads((self._cdir(rec["id"]) / "image.json").read_text())
            with self._disk_read(rec), View([info["upperdir"], *info["lowerdirs"]]) as view:
                data = view.read_file("/etc/passwd") or b""
            for line in data.decode("utf-8", "replace").splitlines():
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    out.setdefault(int(parts[2]), parts[0])
        return out

    def stats_sample(self, ref: str) -> dict:
        """Cumulative counters of a running container (see stats.sample)."""
        rec, pid = self._running_pid(ref, "stats")
        return {"id": rec["id"], "name": rec["name"], **_stats.sample(pid)}

    def stats(self, ref: str, interval: float = 0.5) -> dict:
        """One reading with CPU % measured over `interval` seconds."""
        first = self.stats_sample(ref)
        time.sleep(interval)
        return _stats.with_rates(first, self.stats_sample(ref))

    def stats_stream(self, ref: str, interval: float = 1.0) -> Iterator[dict]:
        """A reading every `interval` seconds until the container stops."""
        before = self.stats_sample(ref)
        while True:
            time.sleep(interval)
            try:
                now = self.stats_sample(ref)
            except (InvalidState, OSError):
                return
            yield _stats.with_rates(before, now)
            before = now

    # ---- files (cp) ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _root_fd(self, ref: str, what: str):
        _, pid = self._running_pid(ref, what)
        try:
            fd = _archive.open_root(pid)
        except OSError as e:
            raise InvalidState(f"the container's root is not reachable: {e.strerror or e}") from None
        try:
            yield fd
        finally:
            os.close(fd)

    def stat_path(self, ref: str, path: str) -> dict:
        with self._root_fd(ref, "cp") as fd:
            return _archive.stat_path(fd, path)

    def list_dir(self, ref: str, path: str) -> list[dict]:
        with self._root_fd(ref, "listing files") as fd:
            return _archive.list_dir(fd, path)

    def get_archive(self, ref: str, path: str, out: BinaryIO) -> int:
        """`path` in the container (and its tree) as a tar stream; bytes written."""
        with self._root_fd(ref, "cp") as fd:
            return _archive.get_archive(fd, path, out)

    def put_archive(self, ref: str, path: str, stream: BinaryIO) -> int:
        """Extract a tar stream into directory `path` of the container; entries written."""
        with self._root_fd(ref, "cp") as fd:
            return _archive.put_archive(fd, path, stream, str(self.root / "tmp" / "cp"))
