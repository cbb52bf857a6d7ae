"""The client side of the monitor's exec sessions (see exec_sessions.py): start, attach, input, resize,
kill, status, wait, list."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from workers.engine.monitor.client import MonitorClient, MonitorError


class ExecClient:
    """Exec-session requests on one host's monitor."""

    def __init__(self, monitor: MonitorClient):
        self.monitor = monitor

    def start(self, cid: str, process: dict, *, interactive: bool = False, rows: int | None = None,
              cols: int | None = None) -> dict:
        """Start `process` (a full OCI process) in running container `cid`; the session's info once it runs."""
        req = {"op": "exec_start", "id": cid, "process": process, "interactive": interactive}
        if rows and cols:
            req.update(rows=int(rows), cols=int(cols))
        return self.monitor.request(req, timeout=90)["session"]

    def input(self, sid: str, data: bytes, eof: bool = False) -> int:
        return self.monitor.request({"op": "exec_input", "session": sid, "b64": base64.b64encode(data).decode(),
                                     "eof": eof}, timeout=10)["written"]

    def resize(self, sid: str, rows: int, cols: int) -> None:
        self.monitor.request({"op": "exec_resize", "session": sid, "rows": int(rows), "cols": int(cols)}, timeout=10)

    def kill(self, sid: str, signal: int = 9) -> dict:
        return self.monitor.request({"op": "exec_kill", "session": sid, "signal": int(signal)}, timeout=10)["session"]

    def status(self, sid: str) -> dict:
        return self.monitor.request({"op": "exec_status", "session": sid}, timeout=10)["session"]

    def wait(self, sid: str, timeout: float | None = None) -> dict:
        sock_timeout = None if timeout is None else timeout + 10
        return self.monitor.request({"op": "exec_wait", "session": sid, "timeout": timeout},
                                    timeout=sock_timeout)["session"]

    def list(self, cid: str | None = None) -> list[dict]:
        req = {"op": "exec_list"} if cid is None else {"op": "exec_list", "id": cid}
        return self.monitor.request(req, timeout=10)["sessions"]

    def attach(self, sid: str, since: int = 0) -> Iterator[dict]:
        """The session's output from byte `since` (what the monitor still holds), then live: yields
        {"stream", "data": bytes, "offset"} and last {"exit": info}."""
        sock = self.monitor._connect(None)
        try:
            sock.sendall((json.dumps({"op": "exec_attach", "session": sid, "since": int(since)}) + "\n").encode())
            reader = sock.makefile("rb")
            first = reader.readline()
            if not first:
                raise MonitorError("monitor closed the connection")
            reply = json.loads(first)
            if not reply.get("ok"):
                raise MonitorError(reply.get("error", "attach failed"))
            yield {"session": reply["session"]}
            for raw in reader:
                frame = json.loads(raw)
                if "b64" in frame:
                    frame["data"] = base64.b64decode(frame.pop("b64"))
                yield frame
        finally:
            sock.close()
