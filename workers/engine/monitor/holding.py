"""The monitor's side of the holder (see holder.py): every stream fd is handed to the holder before a
container can write to it, and given back to the next monitor; exits the holder reaped come here."""

from __future__ import annotations

import os
import selectors
import socket
import sys

from workers.engine.monitor.holder import raise_nofile, recv_msg, send_msg
from workers.engine.monitor.records import Container

HOLDER_FD_ENV = "BERTH_MONITOR_HOLDER_FD"


class HoldingMixin:
    """Part of Monitor: the link to the holder."""

    def connect_holder(self) -> None:
        """Read what the holder kept for us (fds by key, exits nobody acknowledged) up to "ready"."""
        self.holder: socket.socket | None = None
        self.held: dict[str, int] = {}
        self.holder_exits: dict[int, dict] = {}
        raise_nofile()
        fd = os.environ.pop(HOLDER_FD_ENV, None)
        if fd is None:
            return  # run by hand (--foreground): containers die with... nothing, but are not taken back
        sock = socket.socket(fileno=int(fd))
        os.set_inheritable(sock.fileno(), False)
        sock.settimeout(30)
        while True:
            got = recv_msg(sock)
            if got is None:
                print("berth-monitor: the holder went away during the hand-over", file=sys.stderr)
                sock.close()
                return
            msg, fds = got
            if msg["op"] == "fds":
                self.held.update(zip(msg["keys"], fds, strict=False))
            elif msg["op"] == "exit":
                self.holder_exits[int(msg["pid"])] = msg
            elif msg["op"] == "ready":
                break
        sock.settimeout(10)
        self.holder = sock
        self.sel.register(sock, selectors.EVENT_READ, ("holder", None))

    def _holder_send(self, msg: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
        if self.holder is None:
            return
        try:
            send_msg(self.holder, msg, fds)
        except OSError as exc:
            self._holder_lost(exc)

    def _holder_lost(self, exc: object) -> None:
        print(f"berth-monitor: lost the holder ({exc}); containers are no longer kept through a monitor "
              "restart", file=sys.stderr)
        if self.holder is not None:
            self.sel.unregister(self.holder)
            self.holder.close()
        self.holder = None

    def _hold(self, c: Container, pairs: list[tuple[str, int]]) -> None:
        """Give the holder a duplicate of each (name, fd) of c, before anything is written to them."""
        for name, fd in pairs:
            c.hold_keys[fd] = f"{c.id}/{name}"
        self._holder_send({"op": "keep", "keys": [f"{c.id}/{name}" for name, _ in pairs]}, [fd for _, fd in pairs])

    def _unhold(self, c: Container, fd: int) -> None:
        key = c.hold_keys.pop(fd, None)
        if key is not None:
            self._holder_send({"op": "drop", "keys": [key]})

    def _unhold_all(self, c: Container) -> None:
        keys = list(c.hold_keys.values())
        c.hold_keys.clear()
        if keys:
            self._holder_send({"op": "drop", "keys": keys})

    def _ack_exit(self, pid: int) -> None:
        self._holder_send({"op": "ack", "pids": [pid]})

    def _holder_event(self) -> None:
        try:
            got = recv_msg(self.holder)
        except OSError as exc:
            self._holder_lost(exc)
            return
        if got is None:
            self._holder_lost("EOF")
            return
        msg, fds = got
        for fd in fds:
            os.close(fd)
        if msg.get("op") == "exit":
            self._holder_exit(msg)

    def _holder_exit(self, msg: dict) -> None:
        """A process the holder reaped: a container whose monitor died, or a runtime command that was
        in flight then. Acknowledged once its record is written (the holder resends until then)."""
        pid, status, ticks = int(msg["pid"]), int(msg["status"]), msg.get("ticks")
        from workers.engine.monitor.procfs import exit_code_of

        if pid in self.ops:
            self._op_done(pid, status)
        else:
            c = self.by_pid.get(pid)
            if c is not None and (c.start_ticks is None or ticks is None or c.start_ticks == ticks):
                self._container_exited(self.by_pid.pop(pid), exit_code_of(status))
            else:
                self.unclaimed[pid] = status
        self._ack_exit(pid)

    def _adopt_streams(self, c: Container) -> None:
        """The held fds of a container taken back: read them as if we had made them."""
        prefix = f"{c.id}/"
        for key in [k for k in self.held if k.startswith(prefix)]:
            fd = self.held.pop(key)
            name = key[len(prefix):]
            c.hold_keys[fd] = key
            if name == "tty":
                c.tty_master = fd
                self._add_stream(c, fd, "stdout")
            else:
                self._add_stream(c, fd, name)

    def _release_unclaimed_fds(self) -> None:
        """Held fds of containers without a record (forgotten meanwhile): closed here and there."""
        if self.held:
            self._holder_send({"op": "drop", "keys": list(self.held)})
        for fd in self.held.values():
            os.close(fd)
        self.held.clear()
