"""The monitor's socket, its selectors loop and its client connections (JSON lines)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time

from workers.engine.monitor import layout
from workers.engine.monitor.procfs import set_child_subreaper
from workers.engine.monitor.records import Client, Container

MAX_CLIENT_BACKLOG = 4 * 1024 * 1024  # an attached client this far behind is dropped


class ServerMixin:
    """Part of Monitor: binding, the event loop, reading requests and writing replies."""

    # ---- set-up -------------------------------------------------------------------

    def bind(self) -> None:
        layout.records_dir(self.root).mkdir(parents=True, exist_ok=True)
        path = layout.socket_path(self.root)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        self.listener = sock
        self.sel.register(sock, selectors.EVENT_READ, ("listen", None))

        self._wake_r, wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake_w = wake_w
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        set_child_subreaper()

    def _on_term(self, *_):
        self.stopping = True

    # ---- the loop -----------------------------------------------------------------

    def serve(self) -> None:
        self.connect_holder()
        self.recover()
        self.exec_recover()
        self.reap()
        while not self.stopping:
            for key, events in self.sel.select(self._next_timeout()):
                kind, obj = key.data
                try:
                    if kind == "listen":
                        self._accept()
                    elif kind == "wake":
                        self._drain_wake()
                    elif kind == "client":
                        self._client_event(obj, events)
                    elif kind == "stream":
                        self._read_stream(obj, key.fd)
                    elif kind == "console":
                        self._receive_console(obj)
                    elif kind == "pidfd":
                        self._adopted_exit(obj)
                    elif kind == "holder":
                        self._holder_event()
                    else:  # e.g. exec_stream, exec_console (exec_sessions.py)
                        getattr(self, f"_on_{kind}")(obj, key.fd)
                except Exception as exc:  # one bad event must not take every container's monitor down
                    print(f"berth-monitor: {kind}: {exc!r}", file=sys.stderr)
            self.reap()
            if self.exits_unwritten:
                self._retry_unwritten_exits()
            if self.log_blocked:
                self._retry_blocked_logs()
            self._check_deadlines()
            for sink in self.sinks.values():
                sink.flush()
        self.close()

    def _next_timeout(self) -> float | None:
        if any(sink.busy() for sink in self.sinks.values()):
            return 0.002  # lines for the live view wait on Redis's answer: come back for them
        deadlines = [op.deadline for op in self.ops.values()]
        if self.log_blocked:
            deadlines.append(min(self.log_blocked.values()))
        if self.exits_unwritten:
            deadlines.append(min(self.exits_unwritten.values()))
        deadlines += [d for c in self.waiting for _, d in c.waiters]
        deadlines += self._exec_deadlines()
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.listener is not None:
            try:
                layout.socket_path(self.root).unlink()
            except FileNotFoundError:
                pass
            self.listener.close()

    # ---- clients ------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            cl = Client(sock)
            self.sel.register(sock, selectors.EVENT_READ, ("client", cl))

    def _client_event(self, cl: Client, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush_client(cl)
        if not events & selectors.EVENT_READ or cl.sock.fileno() < 0:
            return
        try:
            data = cl.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_client(cl)
            return
        cl.inbuf += data
        while b"\n" in cl.inbuf:
            line, _, rest = cl.inbuf.partition(b"\n")
            cl.inbuf = bytearray(rest)
            if line.strip():
                self._request(cl, line)

    def _request(self, cl: Client, line: bytes) -> None:
        try:
            req = json.loads(line)
            op = req["op"]
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            handler(cl, req)
        except Exception as exc:
            self._reply(cl, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def _reply(self, cl: Client, obj: dict) -> None:
        self._send(cl, (json.dumps(obj) + "\n").encode())

    def _send(self, cl: Client, data: bytes) -> None:
        if cl.sock.fileno() < 0:
            return
        cl.outbuf += data
        if len(cl.outbuf) > MAX_CLIENT_BACKLOG:
            self._close_client(cl)
            return
        self._flush_client(cl)

    def _flush_client(self, cl: Client) -> None:
        if cl.sock.fileno() < 0:
            return
        try:
            while cl.outbuf:
                n = cl.sock.send(cl.outbuf)
                del cl.outbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._close_client(cl)
            return
        if not cl.outbuf and cl.close_after_flush:
            self._close_client(cl)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if cl.outbuf else 0)
        self.sel.modify(cl.sock, want, ("client", cl))

    def _close_client(self, cl: Client) -> None:
        if cl.sock.fileno() < 0:
            return
        self.sel.unregister(cl.sock)
        cl.sock.close()
        if cl.attached_to and cl.attached_to in self.containers:
            c = self.containers[cl.attached_to]
            if cl in c.attached:
                c.attached.remove(cl)
        for c in self.waiting:
            c.waiters = [(w, d) for w, d in c.waiters if w is not cl]
        self._exec_forget_client(cl)

    def _get(self, req: dict) -> Container:
        cid = str(req["id"])
        c = self.containers.get(cid)
        if c is None:
            raise KeyError(f"no such container: {cid}")
        return c
