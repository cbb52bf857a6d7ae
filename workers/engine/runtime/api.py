"""The runtime's Python API: what the engine calls in-process and what the CLI wraps.

    rt = Runtime("/var/lib/berth/runtime")
    rt.create("web", "/path/to/bundle"); rt.start("web"); rt.state("web")["status"]
    rt.kill("web", signal.SIGKILL); rt.delete("web")

State lives in <root>/<id>/ (state.json, exec.fifo). Status comes from the init's pid and
its start time (so it is right with no monitor and across pid reuse), exec.fifo (still
there: "created") and the freezer ("paused").
"""

from __future__ import annotations

import _signal as signal  # signal's own functions and numbers, without its enum import (see jsonfast)
import errno
import os
import time

from . import config as C
from . import state as S
from .create import CATATONIT, CreateMixin, _uses_init
from .errors import ContainerNotFound, InvalidState, RuntimeError_
from .state import _now_rfc3339, _rmtree
from .sync import _ack, _read_line

__all__ = ["CATATONIT", "Runtime", "_ack", "_now_rfc3339", "_read_line", "_rmtree", "_uses_init", "dumps",
           "parse_signal"]


def parse_signal(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    num = getattr(signal, s, None) if s[3:].isalnum() else None  # not SIG_DFL, SIG_BLOCK, ...
    if isinstance(num, int) and num in signal.valid_signals():
        return num
    if s[:9] in ("SIGRTMIN+", "SIGRTMAX-") and s[9:].isdigit():
        base = signal.SIGRTMIN if "MIN" in s else signal.SIGRTMAX
        n = int(s[9:])
        return base + n if "MIN" in s else base - n
    raise InvalidState(f"unknown signal {sig!r}")


class Runtime(CreateMixin):
    """One runtime state root; every method is a short synchronous operation (create: create.py)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    # -- start ---------------------------------------------------------------------------

    def start(self, id: str) -> None:
        st = S.load(self.root, id)
        status = self._status(st)
        if status != "created":
            raise InvalidState(f"cannot start a container that is {status}" if status != "stopped"
                               else "cannot start a container that has stopped")
        import select

        fifo = os.path.join(self.root, id, "exec.fifo")
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidState("cannot start an already running container") from None
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while True:
                if poller.poll(100):
                    data = os.read(fd, 1)
                    if data:
                        break
                    raise InvalidState("cannot start a container that has stopped")
                if not S.alive(st["pid"], st.get("start_time")):
                    raise InvalidState("cannot start a container that has stopped")
        finally:
            os.close(fd)
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        hooks = (st.get("config") or {}).get("hooks") or {}
        if hooks.get("poststart"):
            from .hooks import run_hooks_quietly

            run_hooks_quietly(hooks["poststart"], self._public(st, "running"), "poststart")

    # -- queries -------------------------------------------------------------------------

    def _cgroup(self, st: dict):
        from .cgroups import Cgroup

        return Cgroup.from_json(st["cgroup"])

    def _status(self, st: dict) -> str:
        if not S.alive(st.get("pid", 0), st.get("start_time")):
            return "stopped"
        if os.path.exists(os.path.join(self.root, st["id"], "exec.fifo")):
            return "created"
        if self._cgroup(st).frozen():
            return "paused"
        return "running"

    def _public(self, st: dict, status: str) -> dict:
        out = {"ociVersion": st.get("ociVersion") or S.OCI_VERSION, "id": st["id"], "status": status,
               "pid": st["pid"] if status != "stopped" else 0, "bundle": st["bundle"],
               "rootfs": st.get("rootfs"), "created": st.get("created"), "owner": st.get("owner", ""),
               "annotations": st.get("annotations") or {}}
        return out

    def state(self, id: str) -> dict:
        """OCI state, plus `oomKilled` (an OOM kill happened in the container's cgroup)."""
        st = S.load(self.root, id)
        out = self._public(st, self._status(st))
        out["oomKilled"] = self._cgroup(st).oom_kills() > 0
        return out

    def oom_killed(self, id: str) -> bool:
        return self._cgroup(S.load(self.root, id)).oom_kills() > 0

    def stats(self, id: str) -> dict:
        return self._cgroup(S.load(self.root, id)).stats()

    def ps(self, id: str) -> list[int]:
        return self._cgroup(S.load(self.root, id)).pids()

    def list(self) -> list[dict]:
        out = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return out
        for name in names:
            if name.startswith("."):
                continue  # .seccomp-cache; container ids never start with a dot
            try:
                out.append(self.state(name))
            except ContainerNotFound:
                continue
        return out

    # -- signals, pause, delete ----------------------------------------------------------

    def kill(self, id: str, sig: int | str = signal.SIGTERM, all: bool = False) -> None:
        st = S.load(self.root, id)
        signum = parse_signal(sig)
        status = self._status(st)
        if status == "stopped":
            raise InvalidState("container not running")
        if all or "pid" not in (st.get("namespaces") or {}):
            self._cgroup(st).signal_all(signum)  # the init is in the cgroup: it is signalled once, as the rest
            return
        try:
            os.kill(st["pid"], signum)
        except ProcessLookupError:
            raise InvalidState("container not running") from None

    def pause(self, id: str) -> None:
        st = S.load(self.root, id)
        status = self._status(st)
        if status not in ("running", "created"):
            raise InvalidState(f"container not running or created: {status}")
        try:
            self._cgroup(st).freeze()
        except OSError as e:
            raise RuntimeError_(e.strerror or str(e)) from None

    def resume(self, id: str) -> None:
        st = S.load(self.root, id)
        if self._status(st) != "paused":
            raise InvalidState("container not paused")
        try:
            self._cgroup(st).thaw()
        except OSError as e:
            raise RuntimeError_(e.strerror or str(e)) from None

    def _kill_cgroup(self, cg) -> None:
        try:
            cg.signal_all(signal.SIGKILL)
        except OSError:
            pass

    def delete(self, id: str, force: bool = False) -> None:
        """Kill what remains (created, or running with force), remove cgroups and state."""
        st = S.load(self.root, id)
        status = self._status(st)
        if status in ("running", "paused") and not force:
            raise InvalidState(f"cannot delete container {id} that is not stopped: {status}")
        cg = self._cgroup(st)
        pid = st.get("pid", 0)
        if status != "stopped":
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if status == "paused":
                try:
                    cg.thaw()
                except OSError:
                    pass
        if "pid" not in (st.get("namespaces") or {}) or (st.get("namespaces") or {}).get("pid"):
            self._kill_cgroup(cg)  # no pid namespace of its own: its processes do not die with init
        for _ in range(5000):
            if not S.alive(pid, st.get("start_time")):
                break
            time.sleep(0.001)
        try:
            cg.destroy()
        except OSError as e:
            if e.errno != errno.ENOENT:
                self._kill_cgroup(cg)
                try:
                    cg.destroy()
                except OSError as e2:
                    raise RuntimeError_(f"removing cgroup {cg.path}: {e2.strerror}") from None
        hooks = (st.get("config") or {}).get("hooks") or {}
        _rmtree(os.path.join(self.root, id))
        if hooks.get("poststop"):
            from .hooks import run_hooks_quietly

            run_hooks_quietly(hooks["poststop"], self._public(st, "stopped"), "poststop")

    # -- run / exec ----------------------------------------------------------------------

    def run(self, id: str, bundle: str, *, stdin: int = 0, stdout: int = 1, stderr: int = 2,
            pid_file: str | None = None, console_socket: str | None = None, detach: bool = False,
            forward_signals: bool = False, keep: bool = False, preserve_fds: int = 0) -> int:
        """create + start; in the foreground wait for the init and return its exit code
        (128+signal when killed), then delete the container unless `keep`."""
        from . import linux as L

        subreaper = False
        if not detach:
            import ctypes

            cur = ctypes.c_int(0)
            L.prctl(37, ctypes.addressof(cur))  # PR_GET_CHILD_SUBREAPER
            if not cur.value:
                L.set_subreaper(True)  # the init is reparented to us when the intermediate exits
                subreaper = True
        listener = None
        try:
            if not detach and not console_socket:
                try:
                    terminal = bool(C.load(os.path.abspath(bundle))["process"].get("terminal"))
                except RuntimeError_:
                    terminal = False  # create reports the error
                if terminal:  # no console socket: we hold the pty and copy it to our stdio, as runc does
                    import socket

                    os.makedirs(self.root, mode=0o711, exist_ok=True)
                    console_socket = os.path.join(self.root, f".{id}.console")
                    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    if os.path.exists(console_socket):
                        os.unlink(console_socket)
                    listener.bind(console_socket)
                    listener.listen(1)
            st = self.create(id, bundle, stdin=stdin, stdout=stdout, stderr=stderr, pid_file=pid_file,
                             console_socket=console_socket, preserve_fds=preserve_fds)
            pid = st["pid"]
            master = -1
            if listener is not None:
                import socket

                conn, _ = listener.accept()
                _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
                conn.close()
                master = fds[0]
            try:
                self.start(id)
            except BaseException:
                self.delete(id, force=True)
                raise
            if detach:
                return 0
            old = {}
            if forward_signals:
                def fwd(signum, _frame):
                    try:
                        os.kill(pid, signum)
                    except ProcessLookupError:
                        pass

                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                          signal.SIGUSR2, signal.SIGWINCH):
                    old[s] = signal.signal(s, fwd)
            try:
                if master >= 0:
                    from .console import proxy

                    proxy(master, stdin, stdout)
                while True:
                    try:
                        _, status = os.waitpid(pid, 0)
                        break
                    except InterruptedError:
                        continue
                    except ChildProcessError:
                        status = -1
                        break
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
            code = 255 if status == -1 else (os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
            if not keep:
                self.delete(id, force=True)
            return code
        finally:
            if listener is not None:
                listener.close()
                try:
                    os.unlink(console_socket)
                except OSError:
                    pass
            if subreaper:
                L.set_subreaper(False)

    def exec(self, id: str, args: list[str] | None = None, env: list[str] | None = None, cwd: str | None = None,
             tty: bool = False, *, process: dict | None = None, user: dict | None = None,
             stdin: int = 0, stdout: int = 1, stderr: int = 2, detach: bool = False, pid_file: str | None = None,
             console_socket: str | None = None, extra_caps: list[str] | None = None,
             no_new_privs: bool | None = None, preserve_fds: int = 0, ignore_paused: bool = False) -> int:
        """Run another process in the container's namespaces and cgroup. Foreground: its
        exit code. Detached: 0 (its pid goes to `pid_file`)."""
        from .exec_ import exec_in

        st = S.load(self.root, id)
        status = self._status(st)
        if status == "stopped":
            raise InvalidState("cannot exec in a stopped container")
        if status == "paused" and not ignore_paused:
            raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
        cfg = st.get("config") or {}
        base = dict(cfg.get("process") or {})
        proc = dict(process) if process else dict(base)
        if not process:
            proc["args"] = list(args or [])
            proc["terminal"] = tty
            if env:
                proc["env"] = list(base.get("env") or []) + list(env)
            if cwd:
                proc["cwd"] = cwd
            if user:
                proc["user"] = dict(base.get("user") or {}, **user)
        if not proc.get("args"):
            raise InvalidState("exec: no command given")
        if extra_caps:
            capsd = {k: list(v) for k, v in (proc.get("capabilities") or {}).items()}
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                capsd[k] = sorted(set(capsd.get(k) or []) | set(extra_caps))
            proc["capabilities"] = capsd
        if no_new_privs is not None:
            proc["noNewPrivileges"] = no_new_privs
        if proc.get("terminal") and not console_socket and detach:
            raise InvalidState("exec: a detached terminal needs --console-socket")
        return exec_in(st, self._cgroup(st), proc, stdio=(stdin, stdout, stderr), detach=detach,
                       pid_file=pid_file, console_socket=console_socket, preserve_fds=preserve_fds)

    def update(self, id: str, resources: dict) -> None:
        st = S.load(self.root, id)
        try:
            self._cgroup(st).apply(resources)
        except OSError as e:
            raise RuntimeError_(e.strerror or str(e)) from None


def dumps(obj) -> str:
    import json  # only here: the command line's start does without it (jsonfast)

    return json.dumps(obj, indent=2)
