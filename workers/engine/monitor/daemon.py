"""The per-host monitor daemon.

One process for all containers of a host (a Python interpreter per container would cost
megabytes each). It is a child subreaper, so every container init reparents to it when
the runtime's `create` process exits, and it reaps them itself: that is how it learns the
exit status. It owns each container's stdout/stderr pipes (or pty master), writes json-file
logs, records `containers/<id>/exit.json`, and answers a JSON-lines protocol on
`<root>/monitor/monitor.sock`: ping, start, status, wait, attach (+ input/resize), forget,
list, shutdown.

Everything runs in one selectors loop; runtime commands are spawned, never waited for in
place, so a slow runtime never stalls the logs of other containers.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

from workers.engine.containers import oci
from workers.engine.monitor import layout
from workers.engine.monitor.jsonlog import JsonFileLog, LineSplitter, encode_entry, rfc3339_nano
from workers.engine.monitor.redis_sink import RedisStreamSink

PR_SET_CHILD_SUBREAPER = 36
READ_CHUNK = 65536
RUNTIME_OP_TIMEOUT = 120.0
MAX_CLIENT_BACKLOG = 4 * 1024 * 1024  # an attached client this far behind is dropped
UNKNOWN_EXIT = -1
MAX_INPUT = 64 * 1024  # keystrokes per input request


def set_child_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def exit_code_of(status: int) -> int:
    """Shell convention: the code, or 128 + the signal that killed it."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def proc_cgroups(pid: int) -> dict[str, str]:
    """controller -> cgroup path of a process ('' for the unified v2 hierarchy)."""
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    out[c] = path
    except OSError:
        pass
    return out


def cgroup_oom_kills(cgroups: dict[str, str]) -> int | None:
    """The kernel's oom_kill counter for a container's memory cgroup (v1 or v2), or None."""
    candidates = []
    if "memory" in cgroups:
        candidates.append(f"/sys/fs/cgroup/memory{cgroups['memory']}/memory.oom_control")
    if "" in cgroups:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            candidates.append(f"{base}{cgroups['']}/memory.events")
    for path in candidates:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return None


def _devnull() -> int:
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def _nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


class Client:
    """One connection on the monitor socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.attached_to: str | None = None
        self.close_after_flush = False


class Container:
    def __init__(self, cid: str, bundle: str, runtime_cmd: list[str], log_path: str, tty: bool):
        self.id = cid
        self.bundle = bundle
        self.runtime_cmd = runtime_cmd
        self.runtime: oci.OCIRuntime | None = None  # the seam for runtime_cmd (set by whoever makes the record)
        self.log_path = log_path
        self.tty = tty
        self.status = "creating"  # creating -> created -> running -> exited
        self.pid: int | None = None
        self.start_ticks: int | None = None
        self.cgroups: dict[str, str] = {}
        self.created_at = rfc3339_nano()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.exit_code: int | None = None
        self.oom_killed = False
        self.reason: str | None = None
        self.log: JsonFileLog | None = None
        self.streams: dict[int, tuple[str, LineSplitter]] = {}  # fd -> (stream name, splitter)
        self.runtime_output = bytearray()  # what the runtime wrote before the container started
        self.logging = False
        self.console_listener: socket.socket | None = None
        self.console_path: str | None = None
        self.tty_master: int | None = None
        self.pending_start: list[Client] = []
        self.waiters: list[tuple[Client, float]] = []
        self.attached: list[Client] = []
        self.pidfd: int | None = None  # only for containers adopted after a monitor restart
        self.log_redis_url: str | None = None  # a sink named in the start request (else the env's)
        self.pid_file = ""

    def info(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "bundle": self.bundle,
            "log_path": self.log_path,
            "tty": self.tty,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "reason": self.reason,
        }

    def record(self) -> dict:
        return {**self.info(), "runtime_cmd": self.runtime_cmd, "start_ticks": self.start_ticks,
                "cgroups": self.cgroups}


class RuntimeOp:
    """A runtime command in flight (create/start) and what to do when it exits."""

    def __init__(self, container: Container, kind: str, errfile, deadline: float):
        self.container = container
        self.kind = kind
        self.errfile = errfile
        self.deadline = deadline


class Monitor:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.sel = selectors.DefaultSelector()
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Container] = {}
        self.ops: dict[int, RuntimeOp] = {}
        self.unclaimed: dict[int, int] = {}  # reaped pids nobody had claimed yet -> status
        self.fd_owner: dict[int, Container] = {}
        self.stopping = False
        self.sink = RedisStreamSink.from_env()
        # by URL, for start requests that name one; a request naming the env's URL shares its sink
        self.sinks: dict[str, RedisStreamSink] = {self.sink.url: self.sink} if self.sink else {}
        self.listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None

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
        self.recover()
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
                except Exception as exc:  # one bad event must not take every container's monitor down
                    print(f"berth-monitor: {kind}: {exc!r}", file=sys.stderr)
            self.reap()
            self._check_deadlines()
            for sink in self.sinks.values():
                sink.flush()
        self.close()

    def _next_timeout(self) -> float | None:
        deadlines = [op.deadline for op in self.ops.values()]
        deadlines += [d for c in self.containers.values() for _, d in c.waiters]
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

    # ---- reaping ------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.ops:
                self._op_done(pid, status)
            elif pid in self.by_pid:
                self._container_exited(self.by_pid.pop(pid), exit_code_of(status))
            else:
                # A runtime helper, or an init whose pid file we have not read yet.
                self.unclaimed[pid] = status
                if len(self.unclaimed) > 4096:
                    self.unclaimed.pop(next(iter(self.unclaimed)))

    # ---- runtime commands ---------------------------------------------------------

    def _spawn(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(layout.project_dir()), env.get("PYTHONPATH")]))
        return os.posix_spawnp(
            argv[0], argv, env,
            file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                          (os.POSIX_SPAWN_DUP2, stderr, 2)],
            # Python ignores SIGPIPE; ignored dispositions survive exec, containers must not inherit it.
            setsigdef=(signal.SIGPIPE, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
            setsigmask=(),
        )

    def _run_op(self, c: Container, kind: str, argv: list[str], stdout: int | None = None,
                stderr: int | None = None) -> None:
        errfile = tempfile.TemporaryFile(prefix="berth-monitor-")
        null = _devnull()
        try:
            pid = self._spawn(argv, null,
                              stdout if stdout is not None else null,
                              stderr if stderr is not None else errfile.fileno())
        finally:
            os.close(null)
        self.ops[pid] = RuntimeOp(c, kind, errfile, time.monotonic() + RUNTIME_OP_TIMEOUT)

    def _op_done(self, pid: int, status: int) -> None:
        op = self.ops.pop(pid)
        op.errfile.seek(0)
        err = op.errfile.read().decode("utf-8", "replace")
        op.errfile.close()
        c = op.container
        code = exit_code_of(status)
        if op.kind == "create":
            if c.tty and c.console_listener is not None:
                try:  # the runtime sent the pty master before it exited
                    self._receive_console(c)
                except (BlockingIOError, InterruptedError):
                    pass
            self._drain_streams(c)
            err = (err + c.runtime_output.decode("utf-8", "replace")).strip()
            c.runtime_output.clear()
            if code != 0:
                self._fail_start(c, f"create failed (exit {code}): {err or 'no message'}")
                return
            try:
                c.pid = int(Path(c.pid_file).read_text().strip())
            except (OSError, ValueError) as exc:
                self._fail_start(c, f"create: no pid file: {exc}")
                return
            c.start_ticks = proc_start_ticks(c.pid)
            c.cgroups = proc_cgroups(c.pid)
            c.status = "created"
            c.logging = True
            self.by_pid[c.pid] = c
            self._persist(c)
            if c.pid in self.unclaimed:  # it died before we knew its pid
                self._container_exited(self.by_pid.pop(c.pid), exit_code_of(self.unclaimed.pop(c.pid)))
                return
            c.started_at = rfc3339_nano()
            self._run_op(c, "start", c.runtime.start_argv(c.id))
        elif op.kind == "start":
            if code != 0 and c.status != "exited":
                self._fail_start(c, f"start failed (exit {code}): {err.strip() or 'no message'}", created=True)
                return
            if c.status == "created":
                c.status = "running"
            c.started_at = c.started_at or rfc3339_nano()
            self._persist(c)
            for cl in c.pending_start:
                self._reply(cl, {"ok": True, "container": c.info()})
            c.pending_start.clear()

    def _fail_start(self, c: Container, message: str, created: bool = False) -> None:
        for cl in c.pending_start:
            self._reply(cl, {"ok": False, "error": message})
        c.pending_start.clear()
        if created and c.pid is not None:
            # Created but not started: the runtime still holds it; leave it to the engine's delete,
            # but do not keep a record that would say it runs.
            c.reason = message
        self._drop(c)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for pid, op in list(self.ops.items()):
            if now > op.deadline:
                try:
                    os.kill(pid, signal.SIGKILL)  # reaped by the next reap(); fails the request there
                except ProcessLookupError:
                    pass
                op.deadline = now + 3600
        for c in list(self.containers.values()):
            for cl, d in list(c.waiters):
                if now > d:
                    c.waiters.remove((cl, d))
                    self._reply(cl, {"ok": False, "error": "timeout", "timeout": True, "container": c.info()})

    # ---- starting a container -----------------------------------------------------

    def start_container(self, cl: Client, req: dict) -> None:
        cid = str(req["id"])
        old = self.containers.get(cid)
        if old is not None:
            if old.status != "exited":
                self._reply(cl, {"ok": False, "error": f"container {cid} is already {old.status}"})
                return
            self._drop(old)
        runtime_cmd = req.get("runtime_cmd") or layout.default_runtime_cmd(self.root)
        log_path = req.get("log_path") or str(layout.default_log_path(self.root, cid))
        tty = bool(req.get("tty"))
        c = Container(cid, str(req["bundle"]), list(runtime_cmd), str(log_path), tty)
        c.runtime = oci.from_command(c.runtime_cmd, self.root / "runtime")
        c.pid_file = str(layout.records_dir(self.root) / f"{cid}.pid")
        url = req.get("log_redis_url")
        if url:
            # a monitor started earlier without BERTH_LOG_REDIS_URL still feeds the caller's Redis
            c.log_redis_url = str(url)
            if c.log_redis_url not in self.sinks:
                self.sinks[c.log_redis_url] = RedisStreamSink(c.log_redis_url)
        try:
            os.unlink(c.pid_file)
        except FileNotFoundError:
            pass
        try:
            os.unlink(layout.exit_path(self.root, cid))
        except FileNotFoundError:
            pass
        c.log = JsonFileLog(c.log_path, int(req.get("log_max_size", 10 * 1024 * 1024)),
                            int(req.get("log_max_files", 3)))
        self.containers[cid] = c
        c.pending_start.append(cl)
        try:
            c.runtime.prepare(c.bundle)  # e.g. runc needs the overlay rootfs mounted (undone by its delete)
        except Exception as exc:
            self._fail_start(c, f"create failed: {exc}")
            return
        if tty:
            c.console_path = os.path.join(tempfile.gettempdir(), f"berth-console-{os.getpid()}-{id(c):x}.sock")
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(c.console_path)
            lsock.listen(1)
            lsock.setblocking(False)
            c.console_listener = lsock
            self.sel.register(lsock, selectors.EVENT_READ, ("console", c))
            self._run_op(c, "create", c.runtime.create_argv(cid, c.bundle, pid_file=c.pid_file,
                                                            console_socket=c.console_path))
            return
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self._run_op(c, "create", c.runtime.create_argv(cid, c.bundle, pid_file=c.pid_file),
                         stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            self._add_stream(c, fd, name)

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
        messages = splitter.feed(data)
        if messages:
            self._emit(c, name, messages)

    def _emit(self, c: Container, stream: str, messages: list[bytes]) -> None:
        """Log the messages of one read: one write(2) for all of them (a flood is many per read)."""
        entries, lines = [], []
        for message in messages:
            when = rfc3339_nano()
            text, line = encode_entry(stream, message, when)
            entries.append((when, text))
            lines.append(line)
        if c.log is not None:  # disk first: it is the truth the live views follow
            c.log.write_lines(lines)
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
        self.sel.unregister(fd)
        self.fd_owner.pop(fd, None)
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

    # ---- exits --------------------------------------------------------------------

    def _container_exited(self, c: Container, code: int, reason: str | None = None) -> None:
        # Inside its own pid namespace every process has died before the init is reaped, so the
        # pipes hold all the output there will be; read it before writing the exit record.
        self._drain_streams(c)
        if c.tty_master is not None and c.tty_master in c.streams:
            self._end_stream(c, c.tty_master)
        c.oom_killed = self._oom_killed(c)
        c.exit_code = code
        c.reason = reason
        c.status = "exited"
        c.finished_at = rfc3339_nano()
        c.started_at = c.started_at or c.finished_at
        exit_record = {"exit_code": code, "oom_killed": c.oom_killed, "finished_at": c.finished_at,
                       "started_at": c.started_at, "pid": c.pid}
        if reason:
            exit_record["reason"] = reason
        layout.write_json_atomic(layout.exit_path(self.root, c.id), exit_record)
        self._persist(c)
        if c.log is not None and not c.streams:
            c.log.close()
        info = c.info()
        for cl, _ in c.waiters:
            self._reply(cl, {"ok": True, "container": info})
        c.waiters.clear()
        for cl in c.attached:
            self._send(cl, (json.dumps({"exit": info}) + "\n").encode())
            cl.close_after_flush = True
            cl.attached_to = None
            self._flush_client(cl)
        c.attached.clear()

    def _oom_killed(self, c: Container) -> bool:
        """Asked before anything deletes the cgroup: the engine deletes only after the exit record."""
        try:
            known = c.runtime.oom_killed(c.id) if c.runtime is not None else None
        except Exception:
            known = None  # not there yet, or it does not know the container: ask the kernel directly
        if known is not None:
            return known
        return bool(cgroup_oom_kills(c.cgroups))

    def _adopted_exit(self, c: Container) -> None:
        self.sel.unregister(c.pidfd)
        os.close(c.pidfd)
        c.pidfd = None
        self._container_exited(c, UNKNOWN_EXIT,
                               "exit status unknown: the monitor was restarted while the container ran")

    # ---- persistence and recovery -------------------------------------------------

    def _persist(self, c: Container) -> None:
        layout.write_json_atomic(layout.records_dir(self.root) / f"{c.id}.json", c.record())

    def _drop(self, c: Container) -> None:
        for fd in list(c.streams):
            self.sel.unregister(fd)
            self.fd_owner.pop(fd, None)
            os.close(fd)
        c.streams.clear()
        self._close_console_listener(c)
        if c.log is not None:
            c.log.close()
        if c.pid is not None:
            self.by_pid.pop(c.pid, None)
        if c.pidfd is not None:
            self.sel.unregister(c.pidfd)
            os.close(c.pidfd)
        if self.containers.get(c.id) is c:
            del self.containers[c.id]
        try:
            (layout.records_dir(self.root) / f"{c.id}.json").unlink()
        except FileNotFoundError:
            pass

    def recover(self) -> None:
        """After a restart: what the records say ran is checked against /proc, never trusted."""
        for path in sorted(layout.records_dir(self.root).glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            c = Container(rec["id"], rec.get("bundle", ""), rec.get("runtime_cmd") or [],
                          rec.get("log_path", ""), bool(rec.get("tty")))
            for key in ("pid", "start_ticks", "created_at", "started_at", "finished_at", "exit_code",
                        "oom_killed", "reason"):
                setattr(c, key, rec.get(key))
            c.cgroups = rec.get("cgroups") or {}
            c.runtime = oci.from_command(c.runtime_cmd, self.root / "runtime")
            c.oom_killed = bool(c.oom_killed)
            c.status = rec.get("status", "exited")
            self.containers[c.id] = c
            if c.status == "exited" and layout.exit_path(self.root, c.id).exists():
                continue
            alive = c.pid is not None and proc_start_ticks(c.pid) == c.start_ticks and c.start_ticks is not None
            if alive:
                try:
                    c.pidfd = os.pidfd_open(c.pid)
                except OSError:
                    alive = False
            if alive:
                # Not our child any more: its output pipes died with the old monitor and its exit
                # status will go to whoever reaps it. Watch it so we never call it running when not.
                c.status = "running"
                self.sel.register(c.pidfd, selectors.EVENT_READ, ("pidfd", c))
                self._persist(c)
            else:
                self._container_exited(c, UNKNOWN_EXIT, "container ended while the monitor was not running")

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
        for c in self.containers.values():
            c.waiters = [(w, d) for w, d in c.waiters if w is not cl]

    def _get(self, req: dict) -> Container:
        cid = str(req["id"])
        c = self.containers.get(cid)
        if c is None:
            raise KeyError(f"no such container: {cid}")
        return c

    # ---- protocol operations ------------------------------------------------------

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


# ---- process life -----------------------------------------------------------------


def _acquire_pid_lock(root: Path) -> int | None:
    """flock on monitor.pid: exactly one monitor per state root. None if another holds it."""
    layout.monitor_dir(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.pid_path(root), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run_foreground(root: str | os.PathLike[str], ready_fd: int | None = None) -> int:
    root = Path(root)
    lock = _acquire_pid_lock(root)
    if lock is None:
        if ready_fd is not None:
            os.write(ready_fd, b"running")
            os.close(ready_fd)
        return 0
    mon = Monitor(root)
    mon.bind()
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    try:
        mon.serve()
    finally:
        try:
            layout.pid_path(root).unlink()
        except FileNotFoundError:
            pass
        os.close(lock)
    return 0


def daemonize(root: str | os.PathLike[str], timeout: float = 30.0) -> int:
    """Double fork + setsid: the monitor belongs to no one who might die (a Celery worker).
    The calling process returns once the daemon listens (0) or failed (1)."""
    root = Path(root).resolve()
    layout.monitor_dir(root).mkdir(parents=True, exist_ok=True)
    r, w = os.pipe()
    first = os.fork()
    if first:
        os.close(w)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = os.read(r, 64)
            if not chunk:
                break
            answer += chunk
        os.close(r)
        os.waitpid(first, 0)
        return 0 if answer in (b"ok", b"running") else 1
    try:
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        os.chdir("/")
        os.umask(0o022)
        null = os.open(os.devnull, os.O_RDWR)
        logfd = os.open(layout.monitor_dir(root) / "monitor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(logfd, 2)
        os.close(null)
        os.close(logfd)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        code = run_foreground(root, ready_fd=w)
    except BaseException as exc:
        print(f"berth-monitor: {exc!r}", file=sys.stderr)
        code = 1
    os._exit(code)
