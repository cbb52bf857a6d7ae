"""The holder: a tiny per-host process that outlives the monitor and lets the next one take over.

Why this design (and not a shim per container, as conmon is):
- The monitor is the busy part (log encoding, rotation, Redis, clients, runtime commands); it is the one
  that may crash or be killed. What must survive it is small: the read ends of every container's stdio
  pipes and pty masters (close them and a container writing gets SIGPIPE/EIO, and nothing can reopen
  them), and the exit statuses of containers that end while no monitor runs (only a process's parent
  can read it, and an orphan reparents to the nearest *ancestor* that is a subreaper).
- So the holder is the monitor's parent and a child subreaper. The monitor is a subreaper too and
  reaps its own containers as long as it lives; when it dies, every container init reparents to the
  holder, which reaps them and keeps (pid, start time, status) until a monitor acknowledges it has
  written the exit record. The monitor hands the holder a duplicate of every stream fd (SCM_RIGHTS over
  a socketpair) before the container can write to it; a new monitor gets them all back at once, and the
  bytes written meanwhile wait in the pipe (a container that writes more than the pipe holds blocks,
  it is never killed).
- A Python shim per container would cost ~8 MB each; one holder per host costs one interpreter plus
  a few bytes per fd. The holder imports only the standard library, never parses container output,
  never talks to Redis or to clients other than "spawn a monitor": there is little in it to crash.
- The holder does not restart the monitor on its own: the worker's next pass or the next CLI call does
  (through `spawn` on holder.sock), so a monitor that crashes at start does not spin.

Wire (a SOCK_SEQPACKET socketpair; one JSON object per message, fds as SCM_RIGHTS):
  holder -> monitor, at spawn: {"op": "fds", "keys": [...]} (+fds) ..., {"op": "exit", ...} ...,
                               {"op": "ready"}; later {"op": "exit", "pid", "status", "ticks"}.
  monitor -> holder: {"op": "keep", "keys": [...]} (+fds), {"op": "drop", "keys": [...]},
                     {"op": "ack", "pids": [...]}.
Keys are "<container id>/<stream>".
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time

FDS_PER_MESSAGE = 200  # under the kernel's SCM_MAX_FD (253)
MAX_MESSAGE = 1 << 20
PR_SET_CHILD_SUBREAPER = 36


def raise_nofile() -> None:
    """Two fds per container, held here and in the monitor: the soft limit of 1024 is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def send_msg(sock: socket.socket, obj: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = json.dumps(obj).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([data], anc)


def recv_msg(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """One message and the fds that came with it (marked close-on-exec); None at EOF."""
    fds = array.array("i")
    data, anc, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(FDS_PER_MESSAGE * fds.itemsize),
                                   socket.MSG_CMSG_CLOEXEC)
    for level, ctype, payload in anc:
        if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(data), list(fds)


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


class Holder:
    def __init__(self, root: str):
        self.root = root
        self.dir = os.path.join(root, "monitor")
        self.fds: dict[str, int] = {}
        self.exits: dict[int, dict] = {}  # pid -> {"pid", "status", "ticks"} until a monitor acks it
        self.monitor_pid: int | None = None
        self.mon: socket.socket | None = None
        self.sel = selectors.DefaultSelector()
        self.env = dict(os.environ)

    # ---- set-up ----------------------------------------------------------------------

    def bind(self) -> None:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        raise_nofile()
        path = os.path.join(self.dir, "holder.sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(16)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.wake_r, wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake_w = wake_w
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")

    # ---- the monitor -----------------------------------------------------------------

    def spawn_monitor(self) -> int:
        if self.monitor_pid is not None:
            return self.monitor_pid
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**self.env, "BERTH_MONITOR_HOLDER_FD": "3"}
        log = os.open(os.path.join(self.dir, "monitor.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            pid = os.posix_spawn(
                sys.executable, [sys.executable, "-m", "workers.engine.monitor", "--foreground", "--root", self.root],
                env, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                   (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)],
                setsigdef=(signal.SIGCHLD, signal.SIGPIPE, signal.SIGHUP), setsigmask=())
        finally:
            os.close(log)
            os.close(null)
            theirs.close()
        self.monitor_pid, self.mon = pid, mine
        mine.settimeout(10)  # a monitor that stops reading is treated as gone, not waited on forever
        try:
            keys = list(self.fds)
            for i in range(0, len(keys), FDS_PER_MESSAGE):
                chunk = keys[i:i + FDS_PER_MESSAGE]
                send_msg(mine, {"op": "fds", "keys": chunk}, [self.fds[k] for k in chunk])
            for rec in list(self.exits.values()):
                send_msg(mine, {"op": "exit", **rec})
            send_msg(mine, {"op": "ready"})
        except OSError as exc:
            log_line(f"cannot hand over to monitor {pid}: {exc}")
        self.sel.register(mine, selectors.EVENT_READ, "monitor")
        return pid

    def _monitor_gone(self) -> None:
        if self.mon is not None:
            self.sel.unregister(self.mon)
            self.mon.close()
        self.mon = None

    def _from_monitor(self) -> None:
        try:
            got = recv_msg(self.mon)
        except OSError:
            got = None
        if got is None:
            self._monitor_gone()
            return
        msg, fds = got
        op = msg.get("op")
        if op == "keep":
            for key, fd in zip(msg["keys"], fds, strict=False):
                old = self.fds.pop(key, None)
                if old is not None:
                    os.close(old)
                self.fds[key] = fd
            for fd in fds[len(msg["keys"]):]:
                os.close(fd)
        else:
            for fd in fds:
                os.close(fd)
            if op == "drop":
                for key in msg["keys"]:
                    fd = self.fds.pop(key, None)
                    if fd is not None:
                        os.close(fd)
            elif op == "ack":
                for pid in msg["pids"]:
                    self.exits.pop(int(pid), None)

    # ---- children --------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            ticks = start_ticks(pid)  # a zombie's stat still tells its start time: no pid-reuse mix-up
            _, status = os.waitpid(pid, 0)
            if pid == self.monitor_pid:
                self.monitor_pid = None
                log_line(f"monitor {pid} ended (status {status})")
                continue
            rec = {"pid": pid, "status": status, "ticks": ticks}
            self.exits[pid] = rec
            if len(self.exits) > 65536:  # runtime helpers orphaned by a dead monitor nobody asks about
                self.exits.pop(next(iter(self.exits)))
            if self.mon is not None:
                try:
                    send_msg(self.mon, {"op": "exit", **rec})
                except OSError:
                    self._monitor_gone()

    def _has_children(self) -> bool:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            return True
        except ChildProcessError:
            return False

    # ---- requests on holder.sock (from `python -m workers.engine.monitor`) -------------

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(5)
            line = conn.makefile("rb").readline()
            req = json.loads(line or b"{}")
            if req.get("op") == "spawn":
                self.env.update({k: str(v) for k, v in (req.get("env") or {}).items()})
                pid = self.spawn_monitor()
            else:
                pid = self.monitor_pid
            conn.sendall((json.dumps({"ok": True, "pid": os.getpid(), "monitor": pid}) + "\n").encode())
        except (OSError, ValueError) as exc:
            log_line(f"request: {exc!r}")
        finally:
            conn.close()

    def serve(self) -> None:
        self.spawn_monitor()
        while True:
            for key, _ in self.sel.select(None if self.monitor_pid is not None else 5.0):
                try:
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            while self.wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif key.data == "monitor" and self.mon is not None:
                        self._from_monitor()
                except Exception as exc:  # keep holding: that is the whole job
                    log_line(f"{key.data}: {exc!r}")
            self.reap()
            if self.monitor_pid is None and self.mon is not None:
                self._monitor_gone()
            if self.monitor_pid is None and not self.fds and not self.exits and not self._has_children():
                return  # nothing left to hold: the next start begins with a fresh holder


def log_line(text: str) -> None:
    try:
        print(f"berth-holder: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)
    except OSError:  # holder.log on a full disk: the line is lost, the holder (and its fds) stay
        pass


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    root = os.path.abspath(args[args.index("--root") + 1])
    mdir = os.path.join(root, "monitor")
    os.makedirs(mdir, exist_ok=True)
    lock = os.open(os.path.join(mdir, "holder.pid"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another holder serves this root
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())
    h = Holder(root)
    h.bind()
    try:
        h.serve()
    finally:
        try:
            os.unlink(os.path.join(mdir, "holder.sock"))
        except FileNotFoundError:
            pass
        os.ftruncate(lock, 0)
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
