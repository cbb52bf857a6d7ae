"""`exec` in a running container as a session the host's monitor owns (ContainerManager mixin).

The process is the container's own (capabilities, seccomp, rlimits, no_new_privs, env) with the command, user,
env, working directory and terminal the caller asks for; the user's name is looked up in the container's own
/etc/passwd (its merged view, never the host's)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from workers.engine.monitor.client import MonitorError
from workers.engine.monitor.exec_client import ExecClient

from . import states as _states
from .bundle import resolve_user
from .config import merge_env
from .errors import ContainerError, InvalidConfig, InvalidState

_ENV_KEY = re.compile(r"^[^=\x00]+$")


class ExecSessionsMixin:
    """Part of ContainerManager: exec_start/attach/input/resize/kill/status/wait/list."""

    @property
    def exec_client(self) -> ExecClient:
        return ExecClient(self.monitor)

    def exec_process(self, rec: dict, args: list[str], *, user: str | None = None, env: list[str] | None = None,
                     workdir: str | None = None, tty: bool = False) -> dict:
        """The OCI process for an exec: the container's process with the caller's choices."""
        if not args or not all(isinstance(a, str) and a and "\x00" not in a for a in args[:1]):
            raise InvalidConfig("command", "exec needs a command")
        if any("\x00" in str(a) for a in args):
            raise InvalidConfig("command", "the command contains a NUL byte")
        for item in env or []:
            k, eq, _ = str(item).partition("=")
            if not eq or not _ENV_KEY.match(k) or "\x00" in str(item):
                raise InvalidConfig("env", f"environment entry {item!r} is not KEY=VALUE")
        if workdir is not None and (not workdir.startswith("/") or "\x00" in workdir):
            raise InvalidConfig("workdir", f"working directory {workdir!r} must be an absolute path")
        cdir = self._cdir(rec["id"])
        base = json.loads((cdir / "bundle" / "config.json").read_text()).get("process") or {}
        proc = dict(base)
        proc["args"] = [str(a) for a in args]
        proc["terminal"] = bool(tty)
        proc["env"] = merge_env(list(base.get("env") or []), [str(e) for e in env or []])
        if tty and not any(e.startswith("TERM=") for e in proc["env"]):
            proc["env"].append("TERM=xterm")
        if workdir:
            proc["cwd"] = workdir
        if user:
            info = json.loads((cdir / "image.json").read_text())
            with self._disk_read(rec):  # a user the container added is in its upper dir
                proc["user"] = resolve_user(user, [info["upperdir"], *info["lowerdirs"]], rec.get("image") or "")
        proc.pop("consoleSize", None)
        return proc

    def exec_start(self, ref: str, args: list[str], *, user: str | None = None, env: list[str] | None = None,
                   workdir: str | None = None, tty: bool = False, interactive: bool = False,
                   rows: int | None = None, cols: int | None = None) -> dict:
        """Start a session in a running container; its info ({"id", "status": "running", "pid", ...})."""
        cid = self._resolve(ref)
        rec = self._current(cid)
        if rec["state"] != _states.RUNNING:
            raise InvalidState(f"container {rec['name']} is {rec['state']}, not running")
        proc = self.exec_process(rec, args, user=user, env=env, workdir=workdir, tty=tty)
        try:
            return self.exec_client.start(cid, proc, interactive=interactive, rows=rows, cols=cols)
        except MonitorError as e:
            from .manager import _short  # the runtime's own msg="..." when it gave one

            raise ContainerError(f"cannot exec in container {rec['name']}: {_short(str(e))}") from None

    def _session_of(self, ref: str, sid: str) -> dict:
        cid = self._resolve(ref)
        try:
            info = self.exec_client.status(sid)
        except MonitorError as e:
            raise ContainerError(str(e)) from None
        if info.get("container") != cid:  # a session id of another container is not found through this one
            raise ContainerError(f"no such exec session: {sid}")
        return info

    def exec_status(self, ref: str, sid: str) -> dict:
        return self._session_of(ref, sid)

    def exec_attach(self, ref: str, sid: str, since: int = 0) -> Iterator[dict]:
        self._session_of(ref, sid)
        return self.exec_client.attach(sid, since)

    def exec_input(self, ref: str, sid: str, data: bytes, eof: bool = False) -> int:
        self._session_of(ref, sid)
        try:
            return self.exec_client.input(sid, data, eof)
        except MonitorError as e:
            raise InvalidState(str(e)) from None

    def exec_resize(self, ref: str, sid: str, rows: int, cols: int) -> None:
        self._session_of(ref, sid)
        try:
            self.exec_client.resize(sid, rows, cols)
        except MonitorError as e:
            raise InvalidConfig("size", str(e)) from None

    def exec_kill(self, ref: str, sid: str, signal: int = 9) -> dict:
        self._session_of(ref, sid)
        return self.exec_client.kill(sid, signal)

    def exec_wait(self, ref: str, sid: str, timeout: float | None = None) -> dict:
        self._session_of(ref, sid)
        return self.exec_client.wait(sid, timeout)

    def exec_list(self, ref: str) -> list[dict]:
        cid = self._resolve(ref)
        try:
            return self.exec_client.list(cid)
        except MonitorError:
            return []
