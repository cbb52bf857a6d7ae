"""Talking to the per-host monitor: one JSON line per request, one per reply (attach streams)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from workers.engine.monitor import layout


class MonitorError(Exception):
    """The monitor refused a request or cannot be reached; str() is its one-line reason."""


class MonitorGone(MonitorError):
    """The monitor went away before answering (killed, or crashed): the request may have been done."""


class MonitorClient:
    def __init__(self, state_root: str | os.PathLike[str] | None = None, timeout: float = 180.0):
        self.root = layout.state_root(state_root).resolve()
        self.timeout = timeout

    @property
    def socket_path(self) -> Path:
        return layout.socket_path(self.root)

    # ---- plumbing -------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            raise MonitorError(f"monitor not reachable at {self.socket_path}: {exc.strerror or exc}") from exc
        return sock

    def request(self, req: dict, timeout: float | None = None) -> dict:
        """Send one request and return the reply; raises MonitorError if the reply says not ok."""
        sock = self._connect(timeout if timeout is not None else self.timeout)
        try:
            sock.sendall((json.dumps(req) + "\n").encode())
            reply = _read_line(sock)
        except TimeoutError as exc:
            raise MonitorError(f"monitor did not answer {req.get('op')} in time") from exc
        except ConnectionError as exc:
            raise MonitorGone(f"the monitor went away during {req.get('op')}: {exc}") from exc
        finally:
            sock.close()
        if reply is None:
            raise MonitorGone(f"the monitor went away during {req.get('op')}")
        if not reply.get("ok"):
            if reply.get("timeout"):
                raise TimeoutError(reply.get("error", "timeout"))
            raise MonitorError(reply.get("error", "request failed"))
        return reply

    # ---- the API --------------------------------------------------------------------

    def ping(self) -> dict:
        return self.request({"op": "ping"}, timeout=5)

    def is_running(self) -> bool:
        try:
            self.ping()
            return True
        except MonitorError:
            return False

    def ensure_running(self, env: dict[str, str] | None = None) -> int:
        """Start the monitor for this state root unless it runs; returns its pid. `env` is added to
        the daemon's environment (e.g. BERTH_LOG_REDIS_URL for its Redis log sink)."""
        try:
            return self.ping()["pid"]
        except MonitorError:
            pass
        self._env = env
        env = {**os.environ, **(env or {})}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(layout.project_dir()), env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-m", "workers.engine.monitor", "--root", str(self.root)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=60, text=True,
        )
        if proc.returncode != 0:
            raise MonitorError(proc.stderr.strip() or "monitor failed to start")
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.ping()["pid"]
            except MonitorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def pid(self) -> int | None:
        """The daemon's pid from its pid file (for stopping it by pid)."""
        try:
            return int(layout.pid_path(self.root).read_text().strip())
        except (OSError, ValueError):
            return None

    def holder_pid(self) -> int | None:
        """The holder's pid (the monitor's parent, which keeps the containers' pipes; see holder.py)."""
        try:
            return int((layout.monitor_dir(self.root) / "holder.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start_container(
        self,
        id: str,
        bundle: str | os.PathLike[str],
        *,
        runtime_cmd: list[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        log_max_size: int = 10 * 1024 * 1024,
        log_max_files: int = 3,
        tty: bool = False,
        log_redis_url: str | None = None,
        auto_remove: bool = False,
        log_full_hold: float | None = None,
    ) -> dict:
        """Create and start a container through the runtime; the monitor owns its stdio.
        Returns the container's status dict (status "running", or "exited" if it was quick).
        `auto_remove`: at its exit the monitor spawns the engine's remover (containers/autoremove.py)."""
        req = {
            "op": "start", "id": id, "bundle": str(Path(bundle).resolve()), "runtime_cmd": runtime_cmd,
            "log_path": str(log_path) if log_path else None, "log_max_size": log_max_size,
            "log_max_files": log_max_files, "tty": tty,
        }
        if log_redis_url:
            req["log_redis_url"] = log_redis_url
        if log_full_hold is not None:  # seconds output waits for a full log disk before it is dropped
            req["log_full_hold"] = log_full_hold
        if auto_remove:
            req["auto_remove"] = True  # the monitor removes it when it exits (exits.py)
        try:
            return self.request(req)["container"]
        except MonitorGone:
            return self._start_taken_over(id)

    def _start_taken_over(self, id: str) -> dict:
        """The monitor died during our start: the next one finishes it (or says it failed)."""
        self.ensure_running(env=getattr(self, "_env", None))
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                st = self.status(id)
            except MonitorError as exc:
                raise MonitorError(f"the monitor stopped during the start and it did not complete: {exc}") from None
            if st["status"] not in ("creating", "created"):
                return st
            if time.monotonic() > deadline:
                raise MonitorError("the monitor stopped during the start; the next one did not finish it in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def status(self, id: str) -> dict:
        """{"id", "status": creating|created|running|exited, "pid", "exit_code", "oom_killed",
        "started_at", "finished_at", "reason", ...}"""
        return self.request({"op": "status", "id": id}, timeout=10)["container"]

    def wait(self, id: str, timeout: float | None = None) -> dict:
        """Block until the container exits; its status dict. Raises TimeoutError after `timeout` s."""
        sock_timeout = None if timeout is None else timeout + 10
        return self.request({"op": "wait", "id": id, "timeout": timeout}, timeout=sock_timeout)["container"]

    def list(self) -> list[dict]:
        return self.request({"op": "list"}, timeout=10)["containers"]

    def forget(self, id: str) -> None:
        """Drop an exited container from the monitor (its exit.json stays for the engine)."""
        self.request({"op": "forget", "id": id}, timeout=10)

    def shutdown(self) -> None:
        """Stop the daemon (running containers keep running, but lose their log reader)."""
        self.request({"op": "shutdown"}, timeout=10)

    def input(self, id: str, data: str) -> int:
        """Send keystrokes to a tty container's terminal (its stdin); the bytes written."""
        return self.request({"op": "input", "id": id, "data": data}, timeout=10)["written"]

    def resize(self, id: str, rows: int, cols: int) -> None:
        """Set a tty container's terminal size (the program gets SIGWINCH)."""
        self.request({"op": "resize", "id": id, "rows": int(rows), "cols": int(cols)}, timeout=10)

    def attach(self, id: str) -> Iterator[dict]:
        """Live output of a running container: yields {"stream", "data", "time"} dicts, and last
        {"exit": status} when it ends."""
        sock = self._connect(None)
        try:
            sock.sendall((json.dumps({"op": "attach", "id": id}) + "\n").encode())
            reader = sock.makefile("rb")  # one buffered reader: the reply and the output share it
            raw = reader.readline()
            if not raw:
                return
            first = json.loads(raw)
            if "exit" in first:
                yield first
                return
            if not first.get("ok"):
                raise MonitorError(first.get("error", "attach failed"))
            for raw in reader:
                yield json.loads(raw)
        finally:
            sock.close()


def _read_line(sock: socket.socket) -> dict | None:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            if not buf:
                return None
            break
        buf += chunk
    return json.loads(buf)
