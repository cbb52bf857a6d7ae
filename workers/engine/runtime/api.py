"""The runtime's Python API: what the engine calls in-process and what the CLI wraps.

    rt = Runtime("/var/lib/berth/runtime")
    rt.create("web", "/path/to/bundle"); rt.start("web"); rt.state("web")["status"]
    rt.kill("web", signal.SIGKILL); rt.delete("web")

State lives in <root>/<id>/ (state.json, exec.fifo). Status comes from the init's pid and
its start time (so it is right with no monitor and across pid reuse), exec.fifo (still
there: "created") and the freezer ("paused").
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time

from . import config as C
from . import state as S
from .errors import ContainerExists, ContainerNotFound, InvalidBundle, InvalidState, RuntimeError_

CATATONIT = "/usr/bin/catatonit"


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def _ack(fd: int, answer: bytes) -> None:
    """Answer the init. If it has died, its "error" line (or EOF) is still in the message pipe and is
    what the user must see, not the EPIPE of this write."""
    try:
        os.write(fd, answer + b"\n")
    except BrokenPipeError:
        pass


def _read_line(fd: int, buf: bytearray) -> str | None:
    while b"\n" not in buf:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buf += chunk
    i = buf.index(b"\n")
    line = bytes(buf[:i]).decode(errors="replace")
    del buf[: i + 1]
    return line


def _rmtree(path: str) -> None:
    """A state dir holds a few plain files: no need for shutil (slow to import)."""
    try:
        for name in os.listdir(path):
            try:
                os.unlink(os.path.join(path, name))
            except IsADirectoryError:
                _rmtree(os.path.join(path, name))
            except FileNotFoundError:
                pass
        os.rmdir(path)
    except FileNotFoundError:
        pass


def parse_signal(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(signal.Signals, s))
    except AttributeError:
        if s.startswith("SIGRTMIN+") or s.startswith("SIGRTMAX-"):
            base = signal.SIGRTMIN if "MIN" in s else signal.SIGRTMAX
            n = int(s[9:])
            return base + n if "MIN" in s else base - n
        raise InvalidState(f"unknown signal {sig!r}") from None


def _uses_init(cfg: dict) -> bool:
    return (cfg.get("annotations") or {}).get("org.berth.init") in ("1", "true")


class Runtime:
    """One runtime state root; every method is a short synchronous operation."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    # -- create / start ------------------------------------------------------------------

    def create(self, id: str, bundle: str, *, stdin: int = 0, stdout: int = 1, stderr: int = 2,
               pid_file: str | None = None, console_socket: str | None = None, preserve_fds: int = 0) -> dict:
        """Set the container up to the point of exec; it then waits for `start`."""
        C.check_id(id)
        bundle = os.path.abspath(bundle)
        if os.path.exists(os.path.join(self.root, id)):
            raise ContainerExists(f"container with id exists: {id}")
        cfg = C.load(bundle)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        sdir = os.path.join(self.root, id)
        try:
            os.mkdir(sdir, 0o711)
        except FileExistsError:
            raise ContainerExists(f"container with id exists: {id}") from None
        try:
            return self._create(id, bundle, cfg, sdir, (stdin, stdout, stderr), pid_file, console_socket, preserve_fds)
        except BaseException:
            _rmtree(sdir)
            raise

    def _create(self, id, bundle, cfg, sdir, stdio, pid_file, console_socket, preserve_fds=0) -> dict:
        import _thread

        from .cgroups import Cgroup, resolve_path, warm_up_migration
        from .init import InitContext, intermediate


        linux = cfg.get("linux") or {}
        proc = cfg["process"]
        rootfs = C.root_path(cfg, bundle)
        fifo = os.path.join(sdir, "exec.fifo")
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)
        cg = Cgroup.for_path(resolve_path(linux.get("cgroupsPath"), id))
        nss = C.namespaces(cfg)
        cgroup_record = cg.to_json()
        created_cg = False
        seccomp_filter = None
        console_fd = -1
        fds: list[int] = []
        try:
            try:
                cg.create()
                created_cg = True
                # after the mkdirs: the warm-up holds cgroup_mutex while it waits
                _thread.start_new_thread(warm_up_migration, ())
                res = dict(linux.get("resources") or {})
                if "devices" in res or linux.get("devices"):
                    res["devices"] = list(res.get("devices") or []) + [
                        {"allow": True, "type": d.get("type", "c"), "major": d.get("major"), "minor": d.get("minor"), "access": "rwm"}
                        for d in linux.get("devices") or []]
                cg.apply(res)
            except OSError as e:
                raise RuntimeError_(e.strerror or str(e)) from None
            if linux.get("seccomp"):
                from .seccomp_filter import compile_bpf_cached

                try:
                    seccomp_filter = compile_bpf_cached(linux["seccomp"], bool(proc.get("noNewPrivileges")),
                                                        os.path.join(self.root, ".seccomp-cache"))
                except (ValueError, OSError, KeyError, TypeError) as e:
                    raise InvalidBundle(f"config.json: linux.seccomp: {e}") from None
            if proc.get("terminal"):
                if not console_socket:
                    raise InvalidBundle("process.terminal is true but no --console-socket was given")
                import socket

                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(console_socket)
                except OSError as e:
                    s.close()
                    raise RuntimeError_(f"cannot connect to console socket {console_socket}: {e.strerror}") from None
                console_fd = s.detach()
                fds.append(console_fd)
            init_argv = None
            python_init = False
            if _uses_init(cfg):
                if os.path.exists(CATATONIT) and not os.environ.get("BERTH_RUNTIME_PYTHON_INIT"):
                    init_argv = ["/dev/.berth-init", "--"] + list(proc["args"])
                else:
                    python_init = True
            hooks = cfg.get("hooks") or {}
            want_hooks = bool(hooks.get("prestart") or hooks.get("createRuntime"))
            msg_r, msg_w = os.pipe()
            ack_r, ack_w = os.pipe()
            fds += [msg_r, msg_w, ack_r, ack_w]
            ctx = InitContext(cfg=cfg, bundle=bundle, rootfs=rootfs, state_dir=sdir, msg_w=msg_w, ack_r=ack_r,
                              stdio=stdio, fifo_path=fifo,
                              seccomp_filter=seccomp_filter, console_fd=console_fd, want_hooks=want_hooks,
                              init_argv=init_argv, python_init=python_init, preserve_fds=preserve_fds,
                              cgroup_dirs=cg.dirs)
            child = os.fork()
            if child == 0:
                os.close(msg_r)
                os.close(ack_w)
                intermediate(ctx)  # never returns
            os.close(msg_w)
            os.close(ack_r)
            fds = [f for f in fds if f not in (msg_w, ack_r)]
            init_pid = 0
            err = None
            buf = bytearray()
            base_state = {"ociVersion": cfg.get("ociVersion"), "id": id, "status": "created", "bundle": bundle,
                          "annotations": cfg.get("annotations") or {}}
            while True:
                line = _read_line(msg_r, buf)
                if line is None:
                    err = err or "container init exited before it was ready"
                    break
                kind, _, arg = line.partition(" ")
                if kind == "pid":
                    init_pid = int(arg)
                    try:
                        cg.join(init_pid)
                    except OSError as e:
                        err = e.strerror or str(e)
                        _ack(ack_w, b"fail")
                        continue
                    _ack(ack_w, b"ok")
                elif kind == "userns":
                    self._write_id_maps(child, linux)
                    _ack(ack_w, b"ok")
                elif kind == "hooks":
                    try:
                        from .hooks import run_hooks

                        st = dict(base_state, pid=init_pid)
                        run_hooks(hooks.get("prestart") or [], st, "prestart")
                        run_hooks(hooks.get("createRuntime") or [], st, "createRuntime")
                        _ack(ack_w, b"ok")
                    except RuntimeError_ as e:
                        err = str(e)
                        _ack(ack_w, b"fail")
                elif kind == "error":
                    err = err or arg
                elif kind == "ready":
                    break
            try:
                os.waitpid(child, 0)  # the intermediate process exits right after its fork
            except ChildProcessError:
                pass
            if err:
                if init_pid:
                    try:
                        os.kill(init_pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                raise RuntimeError_(err)
            st_time = S.proc_start_time(init_pid)
            st = {
                "ociVersion": cfg.get("ociVersion", S.OCI_VERSION),
                "id": id,
                "pid": init_pid,
                "bundle": bundle,
                "rootfs": rootfs,
                "created": _now_rfc3339(),
                "owner": "",
                "annotations": cfg.get("annotations") or {},
                "start_time": st_time[1] if st_time else None,
                "cgroup": cgroup_record,
                "namespaces": {t: p for t, p in nss.items()},
                "config": cfg,
            }
            S.save(self.root, id, st)
            if pid_file:
                S.write_pid_file(pid_file, init_pid)
            return self._public(st, "created")
        except BaseException:
            if created_cg:
                self._kill_cgroup(cg)
                try:
                    cg.destroy(timeout=2)
                except OSError:
                    pass
            raise
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    @staticmethod
    def _write_id_maps(pid: int, linux: dict) -> None:
        def fmt(maps):
            return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps or [])

        try:
            with open(f"/proc/{pid}/uid_map", "w") as f:
                f.write(fmt(linux.get("uidMappings")))
            with open(f"/proc/{pid}/gid_map", "w") as f:
                f.write(fmt(linux.get("gidMappings")))
        except OSError as e:
            raise RuntimeError_(f"writing uid/gid maps: {e.strerror}") from None

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
    return json.dumps(obj, indent=2)
