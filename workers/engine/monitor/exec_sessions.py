"""Exec sessions: processes started in a running container that the monitor owns, as conmon does for
`podman exec`.

The runtime's `exec --detach` starts the process and exits at once; the process is reparented to the
monitor (a child subreaper), which holds its stdin/stdout/stderr pipes or its pty master, reaps it and
records its exit code in <root>/monitor/exec/<session>.json. So a session outlives the worker (or browser
relay) that asked for it, several run at once, and one ends when the container stops (the kernel kills
every process of a pid namespace whose init died).

Protocol ops (JSON lines, as the rest of the monitor): exec_start, exec_attach (replays the recent output
from an offset, then streams), exec_input, exec_resize, exec_kill, exec_status, exec_wait, exec_list.
Output frames carry bytes as base64: a terminal's output is not text cut at line ends.
"""

from __future__ import annotations

import array
import base64
import errno
import json
import os
import secrets
import selectors
import signal
import socket
import tempfile
import time

from workers.engine.containers import oci
from workers.engine.monitor import layout
from workers.engine.monitor.exec_record import (
    ExecSession,
    _fork_berth_exec,
    _frame,
    _one_line,
    _set_size,
    _unlink,
    session_path,
    sessions_dir,
)
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.procfs import exit_code_of
from workers.engine.monitor.records import Client, RuntimeOp

SCROLLBACK = 256 * 1024  # bytes of recent output kept per session for a client that (re)attaches
KEEP_ENDED = 256  # ended sessions kept in memory (their record stays on disk)
MAX_INPUT = 64 * 1024
OP_TIMEOUT = 60.0


class ExecMixin:
    """Part of Monitor: exec sessions (state in self.sessions, self.exec_by_pid)."""

    # ---- ops ------------------------------------------------------------------------

    def op_exec_start(self, cl: Client, req: dict) -> None:
        c = self._get(req)
        if c.status != "running" or c.runtime is None:
            raise ValueError(f"container {c.id} is {c.status}, not running")
        process = dict(req["process"])
        if not process.get("args"):
            raise ValueError("exec needs a command")
        s = ExecSession(secrets.token_hex(12), c.id, process, bool(req.get("interactive")))
        if req.get("rows") and req.get("cols"):
            s.size = (int(req["rows"]), int(req["cols"]))
        d = sessions_dir(self.root)
        d.mkdir(parents=True, exist_ok=True)
        s.pid_file = str(d / f"{s.id}.pid")
        s.process_file = str(d / f"{s.id}.process.json")
        with open(s.process_file, "w") as f:
            json.dump(process, f)
        self._exec_keep(s)
        s.pending.append(cl)
        errfile = tempfile.TemporaryFile(prefix="berth-exec-")
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        close_after: list[int] = [null]
        try:
            if s.tty:
                s.console_path = os.path.join(tempfile.gettempdir(), f"berth-exec-{os.getpid()}-{s.id}.sock")
                lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                lsock.bind(s.console_path)
                lsock.listen(1)
                lsock.setblocking(False)
                s.console_listener = lsock
                self.sel.register(lsock, selectors.EVENT_READ, ("exec_console", s))
                stdio = (null, null, errfile.fileno())
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                close_after += [out_w, err_w]
                stdin = null
                if s.interactive:
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    close_after.append(in_r)
                    s.stdin_w = in_w
                    stdin = in_r
                stdio = (stdin, out_w, err_w)
                for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
                    os.set_blocking(fd, False)
                    s.streams[fd] = name
                    self.sel.register(fd, selectors.EVENT_READ, ("exec_stream", s))
            if isinstance(c.runtime, oci.BerthRuntime):
                pid = _fork_berth_exec(c.runtime, c.id, process, s, stdio)  # no interpreter start per exec
            else:
                argv = c.runtime.exec_argv(c.id, s.process_file, pid_file=s.pid_file, console_socket=s.console_path)
                pid = self._spawn(argv, *stdio)
        except Exception as exc:
            errfile.close()
            self._exec_end(s, 127, f"exec could not be started: {exc}")  # answers the request
            return
        finally:
            for fd in close_after:
                os.close(fd)
        self.ops[pid] = RuntimeOp(s, "exec", errfile, time.monotonic() + OP_TIMEOUT)

    def op_exec_attach(self, cl: Client, req: dict) -> None:
        s = self._session(req)
        since = int(req.get("since") or 0)
        self._reply(cl, {"ok": True, "session": s.info()})
        for off, stream, data in s.chunks:  # the scrollback from `since` (a reconnecting client)
            if off + len(data) <= since:
                continue
            cut = max(0, since - off)
            self._send(cl, _frame({"stream": stream, "b64": base64.b64encode(data[cut:]).decode(),
                                   "offset": off + cut}))
        if s.status == "exited":
            self._send(cl, _frame({"exit": s.info()}))
            cl.close_after_flush = True
            self._flush_client(cl)
            return
        s.attached.append(cl)

    def op_exec_input(self, cl: Client, req: dict) -> None:
        s = self._session(req)
        data = base64.b64decode(req["b64"]) if "b64" in req else str(req.get("data", "")).encode()
        if len(data) > MAX_INPUT:
            raise ValueError(f"input of {len(data)} bytes is more than {MAX_INPUT} in one request")
        fd = s.master if s.tty else s.stdin_w
        if fd is None:
            raise ValueError("the session takes no input (not interactive, or its input was closed)")
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except BlockingIOError:
            raise ValueError(f"the program is not reading: {len(data) - written} bytes of input not sent") from None
        except BrokenPipeError:
            raise ValueError("the program closed its input") from None
        if req.get("eof"):
            if s.tty:
                os.write(fd, b"\x04")
            else:
                os.close(fd)
                s.stdin_w = None
        self._reply(cl, {"ok": True, "written": written})

    def op_exec_resize(self, cl: Client, req: dict) -> None:
        s = self._session(req)
        if not s.tty:
            raise ValueError("the session has no terminal")
        rows, cols = int(req["rows"]), int(req["cols"])
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise ValueError("rows and cols must be between 1 and 65535")
        s.size = (rows, cols)
        if s.master is not None:
            _set_size(s.master, rows, cols)
        self._reply(cl, {"ok": True})

    def op_exec_kill(self, cl: Client, req: dict) -> None:
        s = self._session(req)
        sig = int(req.get("signal") or signal.SIGKILL)
        if s.status == "running" and s.pid is not None:
            os.kill(s.pid, sig)  # our child, not reaped yet: the pid cannot have been reused
        self._reply(cl, {"ok": True, "session": s.info()})

    def op_exec_status(self, cl: Client, req: dict) -> None:
        sid = str(req["session"])
        s = self.sessions.get(sid)
        if s is not None:
            self._reply(cl, {"ok": True, "session": s.info()})
            return
        try:
            rec = json.loads(session_path(self.root, sid).read_text())
        except (OSError, ValueError):
            self._reply(cl, {"ok": False, "error": f"no such exec session: {sid}", "not_found": True})
            return
        self._reply(cl, {"ok": True, "session": rec})

    def op_exec_wait(self, cl: Client, req: dict) -> None:
        s = self._session(req)
        if s.status == "exited":
            self._reply(cl, {"ok": True, "session": s.info()})
            return
        timeout = req.get("timeout")
        s.waiters.append((cl, time.monotonic() + (float(timeout) if timeout is not None else 10 * 365 * 86400)))

    def op_exec_list(self, cl: Client, req: dict) -> None:
        cid = req.get("id")
        self._reply(cl, {"ok": True, "sessions": [s.info() for s in self.sessions.values()
                                                   if cid is None or s.container == str(cid)]})

    def exec_recover(self) -> None:
        """After a monitor restart: sessions the records say ran lost their stdio with the old monitor (it held
        the pipes and the pty). They are recorded as ended, exit status unknown, so nobody waits on them."""
        for path in sorted(sessions_dir(self.root).glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if rec.get("status") == "exited":
                continue
            rec.update(status="exited", exit_code=None, finished_at=rfc3339_nano(),
                       error="the host's monitor restarted during the session: its output and exit status are lost")
            layout.write_json_atomic(path, rec)

    # ---- the loop's events ------------------------------------------------------------

    def _on_exec_stream(self, s: ExecSession, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's other side closed
                raise
            data = b""
        if not data:
            self._exec_close_stream(s, fd)
            self._exec_maybe_done(s)
            return
        self._exec_output(s, s.streams[fd], data)

    def _on_exec_console(self, s: ExecSession, fd: int) -> None:
        self._exec_receive_console(s)

    def _exec_receive_console(self, s: ExecSession) -> bool:
        if s.console_listener is None:
            return s.master is not None
        try:
            conn, _ = s.console_listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        fds = array.array("i")
        try:
            conn.settimeout(5)
            _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, ctype, data in ancdata:
                if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        finally:
            conn.close()
        if not fds:
            return False
        for extra in fds[1:]:
            os.close(extra)
        self._exec_close_listener(s)
        s.master = fds[0]
        os.set_inheritable(s.master, False)
        os.set_blocking(s.master, False)
        if s.size:
            _set_size(s.master, *s.size)
        s.streams[s.master] = "stdout"
        self.sel.register(s.master, selectors.EVENT_READ, ("exec_stream", s))
        self._exec_maybe_running(s)
        return True

    def _exec_op_done(self, op: RuntimeOp, status: int) -> None:
        """The runtime's `exec --detach` ended: the process runs (its pid in the pid file) or it failed."""
        s = op.container
        op.errfile.seek(0)
        err = op.errfile.read().decode("utf-8", "replace")
        op.errfile.close()
        code = exit_code_of(status)
        _unlink(s.process_file)
        if s.tty:
            self._exec_receive_console(s)
        if code != 0 or s.status == "exited":
            if s.status != "exited":
                early = b"".join(d for name, d in s.early if name == "stderr").decode("utf-8", "replace")
                self._exec_end(s, 127, _one_line(err + early) or f"exec failed (runtime exit {code})")
            return
        try:
            s.pid = int(open(s.pid_file).read().strip())
        except (OSError, ValueError) as exc:
            self._exec_end(s, 127, f"exec: no pid file: {exc}")
            return
        finally:
            _unlink(s.pid_file)
        s.op_done = True
        early, s.early = s.early, []
        for name, data in early:
            self._exec_output(s, name, data)
        self.exec_by_pid[s.pid] = s
        if s.pid in self.unclaimed:  # it ended before we knew its pid
            self._exec_exited(self.exec_by_pid.pop(s.pid), exit_code_of(self.unclaimed.pop(s.pid)))
            return
        self._exec_maybe_running(s)

    def _exec_maybe_running(self, s: ExecSession) -> None:
        if s.status != "starting" or not s.op_done or (s.tty and s.master is None):
            return
        s.status = "running"
        s.started_at = rfc3339_nano()
        self._exec_persist(s)
        for cl in s.pending:
            self._reply(cl, {"ok": True, "session": s.info()})
        s.pending.clear()

    def _exec_exited(self, s: ExecSession, code: int) -> None:
        """Reaped: read what the pipes still hold, then end the session with its code."""
        s.exit_code = code
        self._exec_maybe_done(s, reaped=True)

    def _exec_maybe_done(self, s: ExecSession, reaped: bool = False) -> None:
        # The session ends when the process is reaped; output still in the pipes is read first (a child of the
        # process may keep them open: then its end is not waited for).
        if not reaped and (s.exit_code is None or s.status == "exited"):
            return
        for fd in list(s.streams):
            while fd in s.streams:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._exec_close_stream(s, fd)
                    break
                self._exec_output(s, s.streams[fd], data)
        self._exec_end(s, s.exit_code if s.exit_code is not None else 127, None)

    def _exec_end(self, s: ExecSession, code: int, error: str | None) -> None:
        for fd in list(s.streams):
            self._exec_close_stream(s, fd)
        self._exec_close_listener(s)
        if s.stdin_w is not None:
            os.close(s.stdin_w)
            s.stdin_w = None
        if s.pid is not None:
            self.exec_by_pid.pop(s.pid, None)
        s.started_at = s.started_at or (None if error else rfc3339_nano())
        s.status = "exited"
        s.exit_code = code
        s.error = error
        s.finished_at = rfc3339_nano()
        self._exec_persist(s)
        info = s.info()
        for cl in s.pending:  # a quick process may have ended before the start was answered
            self._reply(cl, {"ok": False, "error": error, "session": info} if error else {"ok": True, "session": info})
        s.pending.clear()
        for cl, _ in s.waiters:
            self._reply(cl, {"ok": True, "session": info})
        s.waiters.clear()
        for cl in s.attached:
            self._send(cl, _frame({"exit": info}))
            cl.close_after_flush = True
            self._flush_client(cl)
        s.attached.clear()

    # ---- helpers ------------------------------------------------------------------------

    def _exec_output(self, s: ExecSession, stream: str, data: bytes) -> None:
        if not s.op_done and s.status == "starting":
            s.early.append((stream, data))  # may be the runtime's own error: held until it has answered
            return
        s.chunks.append((s.offset, stream, data))
        s.offset += len(data)
        s.kept += len(data)
        while s.kept > SCROLLBACK and len(s.chunks) > 1:
            s.kept -= len(s.chunks.popleft()[2])
        if s.attached:
            push = _frame({"stream": stream, "b64": base64.b64encode(data).decode(), "offset": s.offset - len(data)})
            for cl in list(s.attached):
                self._send(cl, push)

    def _exec_close_stream(self, s: ExecSession, fd: int) -> None:
        s.streams.pop(fd, None)
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        os.close(fd)
        if fd == s.master:
            s.master = None

    def _exec_close_listener(self, s: ExecSession) -> None:
        if s.console_listener is not None:
            self.sel.unregister(s.console_listener)
            s.console_listener.close()
            s.console_listener = None
            _unlink(s.console_path)

    def _exec_persist(self, s: ExecSession) -> None:
        layout.write_json_atomic(session_path(self.root, s.id), s.info())

    def _exec_keep(self, s: ExecSession) -> None:
        self.sessions[s.id] = s
        ended = [k for k, v in self.sessions.items() if v.status == "exited"]
        for k in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self.sessions[k]

    def _session(self, req: dict) -> ExecSession:
        sid = str(req["session"])
        s = self.sessions.get(sid)
        if s is None:
            raise KeyError(f"no such exec session: {sid}")
        return s

    def _exec_forget_client(self, cl: Client) -> None:
        for s in self.sessions.values():
            if cl in s.attached:
                s.attached.remove(cl)
            s.waiters = [(w, d) for w, d in s.waiters if w is not cl]

    def _exec_deadlines(self) -> list[float]:
        return [d for s in self.sessions.values() for _, d in s.waiters]

    def _exec_check_deadlines(self, now: float) -> None:
        for s in self.sessions.values():
            for cl, d in list(s.waiters):
                if now > d:
                    s.waiters.remove((cl, d))
                    self._reply(cl, {"ok": False, "error": "timeout", "timeout": True, "session": s.info()})

