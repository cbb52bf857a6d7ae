"""Starting a container: the runtime's create and start commands, spawned and reaped by the loop."""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from workers.engine.containers import oci
from workers.engine.monitor import changes, forking, layout, logfull
from workers.engine.monitor.jsonlog import JsonFileLog, rfc3339_nano
from workers.engine.monitor.procfs import exit_code_of, proc_cgroups, proc_start_ticks
from workers.engine.monitor.records import Client, Container, RuntimeOp
from workers.engine.monitor.redis_sink import RedisStreamSink

RUNTIME_OP_TIMEOUT = 120.0


def _devnull() -> int:
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)



PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031


def _grow_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer, larger reads in a flood, and more output kept while no
    monitor runs. The kernel allocates its pages only as they fill, so an idle container pays nothing."""
    import fcntl

    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size for an unprivileged monitor: the default size then


class StartMixin:
    """Part of Monitor: reaping children, runtime commands in flight, and the start request."""

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
            elif pid in self.exec_by_pid:
                self._exec_exited(self.exec_by_pid.pop(pid), exit_code_of(status))
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

    def _run_op(self, c: Container, kind: str, stdout: int | None = None, stderr: int | None = None,
                console_socket: str | None = None) -> None:
        """The runtime's `kind` (create, start) for c, never waited for here: Berth's runtime in a fork of this
        process (forking.py: no interpreter start), another runtime by its command line."""
        errfile = tempfile.TemporaryFile(prefix="berth-monitor-")
        null = _devnull()
        try:
            stdio = (null, stdout if stdout is not None else null,
                     stderr if stderr is not None else errfile.fileno())
            if isinstance(c.runtime, oci.BerthRuntime):
                self._fork_op(c, kind, stdio, errfile, console_socket)
            else:
                self._spawn_op(c, kind, stdio, errfile, console_socket)
        finally:
            os.close(null)

    def _fork_op(self, c: Container, kind: str, stdio: tuple[int, int, int], errfile,
                 console_socket: str | None) -> None:
        rt = c.runtime
        if kind == "create":
            verb = functools.partial(rt.create, c.id, c.bundle, pid_file=c.pid_file, console_socket=console_socket)
        else:
            verb = functools.partial(rt.start, c.id)
        record = layout.records_dir(self.root) / f"{c.id}.json"
        pid, gate = forking.fork_verb(verb, stdio, f"berth-{kind}", lambda me: _record_names(record, me))
        try:
            self.ops[pid] = RuntimeOp(c, kind, errfile, time.monotonic() + RUNTIME_OP_TIMEOUT)
            # A successor monitor finds the child in the record and waits for it (the holder reaps it).
            c.op = {"kind": kind, "pid": pid, "ticks": proc_start_ticks(pid), "fork": True}
            self._persist(c, durable=False)
        finally:
            forking.release(gate)

    def _spawn_op(self, c: Container, kind: str, stdio: tuple[int, int, int], errfile,
                  console_socket: str | None) -> None:
        if kind == "create":
            argv = c.runtime.create_argv(c.id, c.bundle, pid_file=c.pid_file, console_socket=console_socket)
        else:
            argv = c.runtime.start_argv(c.id)
        # A successor monitor finds the command in the record and waits for it (the holder reaps it).
        c.op = {"kind": kind, "pid": None, "ticks": None, "argv": argv}
        self._persist(c, durable=False)
        pid = self._spawn(argv, *stdio)
        self.ops[pid] = RuntimeOp(c, kind, errfile, time.monotonic() + RUNTIME_OP_TIMEOUT)
        c.op = {"kind": kind, "pid": pid, "ticks": proc_start_ticks(pid), "argv": argv}
        self._persist(c, durable=False)

    def _resume_op(self, c: Container, kind: str, pid: int) -> None:
        """A runtime command started by a monitor that died: its exit comes from the holder."""
        errfile = tempfile.TemporaryFile(prefix="berth-monitor-")
        self.ops[pid] = RuntimeOp(c, kind, errfile, time.monotonic() + RUNTIME_OP_TIMEOUT)

    def _op_done(self, pid: int, status: int) -> None:
        op = self.ops.pop(pid)
        if op.kind == "exec":
            self._exec_op_done(op, status)
            return
        op.container.op = None
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
            self._run_op(c, "start")
        elif op.kind == "start":
            if code != 0 and c.status != "exited":
                self._fail_start(c, f"start failed (exit {code}): {err.strip() or 'no message'}", created=True)
                return
            if c.status == "created":
                c.status = "running"
            c.started_at = c.started_at or rfc3339_nano()
            self._persist(c)
            changes.note(self.root, c.id)
            for cl in c.pending_start:
                self._reply(cl, {"ok": True, "container": c.info()})
            c.pending_start.clear()

    def _fail_start(self, c: Container, message: str, created: bool = False) -> None:
        print(f"berth-monitor: start of {c.id} failed: {message}", file=sys.stderr, flush=True)
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
        self._exec_check_deadlines(now)
        for c in list(self.waiting):
            if not c.waiters:
                self.waiting.discard(c)
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
        c.auto_remove = bool(req.get("auto_remove"))
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
        c.log_max_size = int(req.get("log_max_size", 10 * 1024 * 1024))
        c.log_max_files = int(req.get("log_max_files", 3))
        c.log_full_hold = float(req.get("log_full_hold", logfull.HOLD_SECONDS))
        c.log = JsonFileLog(c.log_path, c.log_max_size, c.log_max_files)
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
            self._run_op(c, "create", console_socket=c.console_path)
            return
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for w in (out_w, err_w):
            _grow_pipe(w)
        self._hold(c, [("stdout", out_r), ("stderr", err_r)])  # before anything can be written to them
        try:
            self._run_op(c, "create", stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            self._add_stream(c, fd, name)


def _record_names(record: Path, pid: int) -> bool:
    """Whether the monitor's record of a container names `pid` as its runtime verb in flight."""
    try:
        return (json.loads(record.read_text()).get("op") or {}).get("pid") == pid
    except (OSError, ValueError):
        return False
