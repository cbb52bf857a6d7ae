"""The operations of the monitor's protocol: ping, start, status, list, wait, attach, input, resize,
forget, shutdown."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import termios
import time

from workers.engine.monitor import layout
from workers.engine.monitor.records import Client

MAX_INPUT = 64 * 1024  # keystrokes per input request


class ProtocolMixin:
    """Part of Monitor: one method per protocol op (`op_<name>`)."""

    def op_ping(self, cl: Client, req: dict) -> None:
        self._reply(cl, {"ok": True, "pid": os.getpid(), "containers": len(self.containers)})

    def op_start(self, cl: Client, req: dict) -> None:
        self.start_container(cl, req)

    def op_status(self, cl: Client, req: dict) -> None:
        cid = str(req["id"])
        c = self.containers.get(cid)
        if c is not None:
            self._reply(cl, {"ok": True, "container": c.info()})
            return
        exit_file = layout.exit_path(self.root, cid)
        if exit_file.exists():  # forgotten by the monitor, still on disk
            rec = json.loads(exit_file.read_text())
            self._reply(cl, {"ok": True, "container": {"id": cid, "status": "exited", **rec}})
            return
        self._reply(cl, {"ok": False, "error": f"no such container: {cid}", "not_found": True})

    def op_list(self, cl: Client, req: dict) -> None:
        self._reply(cl, {"ok": True, "containers": [c.info() for c in self.containers.values()]})

    def op_wait(self, cl: Client, req: dict) -> None:
        c = self._get(req)
        if c.status == "exited":
            self._reply(cl, {"ok": True, "container": c.info()})
            return
        timeout = req.get("timeout")
        deadline = time.monotonic() + (float(timeout) if timeout is not None else 10 * 365 * 86400)
        c.waiters.append((cl, deadline))
        self.waiting.add(c)

    def op_attach(self, cl: Client, req: dict) -> None:
        c = self._get(req)
        if c.status == "exited":
            self._send(cl, (json.dumps({"exit": c.info()}) + "\n").encode())
            cl.close_after_flush = True
            self._flush_client(cl)
            return
        cl.attached_to = c.id
        c.attached.append(cl)
        self._reply(cl, {"ok": True, "attached": c.id, "container": c.info()})

    def op_input(self, cl: Client, req: dict) -> None:
        """Keystrokes for a tty container (from an attached console): they reach its stdin."""
        c = self._get(req)
        if c.tty_master is None:
            raise ValueError("container has no terminal")
        data = str(req.get("data", "")).encode()
        if len(data) > MAX_INPUT:
            raise ValueError(f"input of {len(data)} bytes is more than {MAX_INPUT} in one request")
        written = 0
        try:
            while written < len(data):  # the master is non-blocking: a full terminal buffer is refused, not waited on
                written += os.write(c.tty_master, data[written:])
        except BlockingIOError:
            raise ValueError(f"the terminal is not reading: {len(data) - written} bytes of input not sent") from None
        self._reply(cl, {"ok": True, "written": written})

    def op_resize(self, cl: Client, req: dict) -> None:
        c = self._get(req)
        if c.tty_master is None:
            raise ValueError("container has no terminal")
        rows, cols = int(req["rows"]), int(req["cols"])
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise ValueError("rows and cols must be between 1 and 65535")
        fcntl.ioctl(c.tty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self._reply(cl, {"ok": True})

    def op_forget(self, cl: Client, req: dict) -> None:
        c = self._get(req)
        if c.status != "exited":
            raise ValueError(f"container {c.id} is {c.status}; only an exited container can be forgotten")
        self._drop(c)
        self._reply(cl, {"ok": True})

    def op_shutdown(self, cl: Client, req: dict) -> None:
        self._reply(cl, {"ok": True, "pid": os.getpid()})
        self.stopping = True

