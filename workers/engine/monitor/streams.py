"""A container's output: pipes or a pty master, read into json-file logs, Redis and attached clients."""

from __future__ import annotations

import array
import errno
import json
import os
import selectors
import socket

from workers.engine.monitor.chunklog import encode_chunk, split_whole
from workers.engine.monitor.jsonlog import LineSplitter, encode_entry, rfc3339_nano
from workers.engine.monitor.records import Container

READ_CHUNK = 256 * 1024


def _nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


class StreamsMixin:
    """Part of Monitor: the console socket, reading streams, logging them."""

    def _add_stream(self, c: Container, fd: int, name: str) -> None:
        _nonblock(fd)
        c.streams[fd] = (name, LineSplitter())
        self.fd_owner[fd] = c
        self.sel.register(fd, selectors.EVENT_READ, ("stream", c))

    def _receive_console(self, c: Container) -> None:
        conn, _ = c.console_listener.accept()
        try:
            conn.setblocking(True)
            conn.settimeout(5)
            fds = array.array("i")
            _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, ctype, data in ancdata:
                if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        finally:
            conn.close()
        if not fds:
            return
        for extra in fds[1:]:
            os.close(extra)
        self._close_console_listener(c)
        c.tty_master = fds[0]
        os.set_inheritable(c.tty_master, False)
        self._hold(c, [("tty", c.tty_master)])
        self._add_stream(c, c.tty_master, "stdout")

    def _close_console_listener(self, c: Container) -> None:
        if c.console_listener is not None:
            self.sel.unregister(c.console_listener)
            c.console_listener.close()
            c.console_listener = None
            try:
                os.unlink(c.console_path)
            except (FileNotFoundError, TypeError):
                pass

    # ---- output -------------------------------------------------------------------

    def _read_stream(self, c: Container, fd: int) -> None:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's other side closed
                raise
            data = b""
        if not data:
            self._end_stream(c, fd)
            return
        self._consume(c, fd, data)

    def _consume(self, c: Container, fd: int, data: bytes) -> None:
        if not c.logging:
            c.runtime_output += data[: 65536 - len(c.runtime_output)]
            return
        name, splitter = c.streams[fd]
        whole = split_whole(splitter.buf, data)
        if whole:
            when = rfc3339_nano()
            blob = encode_chunk(name, whole, when)
            if blob is not None:
                self._emit_chunk(c, name, whole, blob, when)
                return
            splitter.buf[:0] = whole  # not for the fast path: the careful way, message by message
        messages = splitter.feed(b"")
        if messages:
            self._emit(c, name, messages)

    def _emit_chunk(self, c: Container, stream: str, whole: bytes, blob: bytes, when: str) -> None:
        """A read's complete lines, already encoded: disk first, then the live view (which samples)."""
        if c.log is not None:
            self._log_write(c, blob)
        sink = self.sinks.get(c.log_redis_url) if c.log_redis_url else self.sink
        if sink is not None:
            sink.add_chunk(c.id, stream, when, whole)
        if c.attached:
            for line in whole[:-1].split(b"\n"):
                push = (json.dumps({"stream": stream, "data": line.decode() + "\n", "time": when}) + "\n").encode()
                for cl in list(c.attached):
                    self._send(cl, push)

    def _emit(self, c: Container, stream: str, messages: list[bytes]) -> None:
        """Log the messages of one read: one write(2) for all of them (a flood is many per read)."""
        entries, lines = [], []
        for message in messages:
            when = rfc3339_nano()
            text, line = encode_entry(stream, message, when)
            entries.append((when, text))
            lines.append(line)
        if c.log is not None:  # disk first: it is the truth the live views follow
            self._log_write(c, b"".join(lines))
        sink = self.sinks.get(c.log_redis_url) if c.log_redis_url else self.sink
        if sink is not None:
            for when, text in entries:
                sink.add(c.id, stream, when, text)
        if c.attached:
            for when, text in entries:
                push = (json.dumps({"stream": stream, "data": text, "time": when}) + "\n").encode()
                for cl in list(c.attached):
                    self._send(cl, push)

    def _end_stream(self, c: Container, fd: int) -> None:
        name, splitter = c.streams.pop(fd)
        if c.logging:
            rest = splitter.flush()
            if rest:
                self._emit(c, name, rest)
        if fd in c.paused:
            c.paused.discard(fd)
        else:
            self.sel.unregister(fd)
        self.fd_owner.pop(fd, None)
        self._unhold(c, fd)
        os.close(fd)
        if fd == c.tty_master:
            c.tty_master = None

    def _drain_streams(self, c: Container) -> None:
        """Read what is already in the pipes (non-blocking), before a state change."""
        for fd in list(c.streams):
            while fd in c.streams:
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._end_stream(c, fd)
                    break
                self._consume(c, fd, data)
