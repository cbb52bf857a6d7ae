"""The runtime's create path: set a container up to the point of exec (cgroup, seccomp, console,
the forked intermediate and init, the sync protocol with them, state.json); `start` then execs it."""

from __future__ import annotations

import _signal as signal  # signal's own functions and numbers, without its enum import (see jsonfast)
import os

from . import config as C
from . import state as S
from .errors import ContainerExists, InvalidBundle, RuntimeError_
from .state import _now_rfc3339, _rmtree
from .sync import _ack, _read_line

CATATONIT = "/usr/bin/catatonit"


def _uses_init(cfg: dict) -> bool:
    return (cfg.get("annotations") or {}).get("org.berth.init") in ("1", "true")


class CreateMixin:
    """Part of Runtime: create (the state dir, then _create)."""

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
        from .cgroups.hierarchy import UNIFIED
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
            into = -1
            if UNIFIED in cg.dirs and "user" not in nss:  # a user namespace's root may not write the v1 files
                try:  # the init is born in its cgroup2 directory (runtime/cgroup_fork.py): made now
                    os.makedirs(cg.dirs[UNIFIED], exist_ok=True)
                    created_cg = True
                    into = os.open(cg.dirs[UNIFIED], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    fds.append(into)
                except OSError:
                    into = -1  # the caller moves it, as on a kernel without clone3 into a cgroup
            ctx = InitContext(cfg=cfg, bundle=bundle, rootfs=rootfs, state_dir=sdir, msg_w=msg_w, ack_r=ack_r,
                              stdio=stdio, fifo_path=fifo,
                              seccomp_filter=seccomp_filter, console_fd=console_fd, want_hooks=want_hooks,
                              init_argv=init_argv, python_init=python_init, preserve_fds=preserve_fds,
                              cgroup_dirs=cg.dirs, cgroup_fd=into)
            child = os.fork()
            if child == 0:
                os.close(msg_r)
                os.close(ack_w)
                intermediate(ctx)  # never returns
            os.close(msg_w)
            os.close(ack_r)
            fds = [f for f in fds if f not in (msg_w, ack_r)]
            # The cgroup is made while the child unshares and forks the init, which joins it only once it has
            # sent its pid (a millisecond or two of a start, made in parallel).
            try:
                try:
                    cg.create()
                    created_cg = True
                    if into < 0:  # the init will be moved: after the mkdirs, as it holds cgroup_mutex while it waits
                        _thread.start_new_thread(warm_up_migration, ())
                    res = dict(linux.get("resources") or {})
                    if "devices" in res or linux.get("devices"):
                        res["devices"] = list(res.get("devices") or []) + [
                            {"allow": True, "type": d.get("type", "c"), "major": d.get("major"),
                             "minor": d.get("minor"), "access": "rwm"} for d in linux.get("devices") or []]
                    cg.apply(res)
                except OSError as e:
                    raise RuntimeError_(e.strerror or str(e)) from None
            except BaseException:
                # the intermediate goes now; an init it forked ends on the ack pipe closed below (EOF)
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                raise
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
                    init_pid = int(arg.split()[0])
                    try:
                        if not arg.endswith(" placed"):  # else it was born in its cgroup2 dir, joins v1 itself
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
