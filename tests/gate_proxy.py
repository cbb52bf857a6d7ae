"""A loopback TCP relay that can stop a transfer in the middle, so a test can kill one side at a known point.

    proxy = GateProxy(target_port)
    proxy.stop_at(b"PUT /internal/transfers/", "up", 256 * 1024)   # hold a push after 256 KiB of its body
    ... wait_for(proxy.held.is_set) ... kill something ... proxy.open_gate()

"up" counts bytes from the client (a push), "down" bytes to the client (a fetch). Only the first connection
whose request starts with the prefix is held; every other one is relayed as is. Threads and sockets end with
`close()`."""

from __future__ import annotations

import contextlib
import socket
import threading


class GateProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self._rule: tuple[bytes, str, int] | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop_at(self, prefix: bytes, direction: str, after: int) -> None:
        with self._lock:
            self._rule = (prefix, direction, after)
            self.held.clear()
            self._gate.clear()

    def open_gate(self, cut: bool = False) -> None:
        """Let the held connection go on (or, with `cut`, close every connection)."""
        with self._lock:
            self._rule = None
        if cut:
            self._close_sockets()
        self._gate.set()

    def close(self) -> None:
        self._closed = True
        self._gate.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._close_sockets()

    def _close_sockets(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            conn = {"rule": None, "decided": False}
            threading.Thread(target=self._pump, args=(client, server, "up", conn), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down", conn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str, conn: dict) -> None:
        count = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if direction == "up" and not conn["decided"]:
                    conn["decided"] = True
                    with self._lock:
                        if self._rule is not None and data.startswith(self._rule[0]) and not self.held.is_set():
                            conn["rule"] = self._rule
                rule = conn["rule"]
                if rule is not None and rule[1] == direction:
                    count += len(data)
                    if count >= rule[2] and not self._gate.is_set():
                        keep = max(0, len(data) - (count - rule[2]))
                        dst.sendall(data[:keep])
                        self.held.set()
                        self._gate.wait()
                        data = data[keep:]
                        conn["rule"] = None
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
