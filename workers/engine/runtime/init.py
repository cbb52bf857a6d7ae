"""The two forked processes of `create`, running the code of the caller after fork:

- the intermediate process joins the cgroup, joins/unshares the namespaces (user first:
  its uid/gid maps are written by the caller), forks the init and exits;
- the init (pid 1 of the new pid namespace) builds the root filesystem, pivots, applies
  the process settings, reports "ready" and blocks on exec.fifo until `start`.

Messages to the caller are lines on a pipe: "pid N", "userns", "hooks", "ready",
"error TEXT"; the caller answers "ok" or "fail" on a second pipe.
"""

from __future__ import annotations

import _signal as signal  # signal's own functions and numbers, without its enum import (see jsonfast)
import os
import sys

from . import linux as L
from . import process, rootfs  # imported by the caller once, so forked children need not
from .cgroup_fork import fork_into_cgroup, join_v1_self
from .cgroups.hierarchy import UNIFIED
from .sync import INIT_COMM, send, wait_ack


class InitContext:
    """What the forked processes need (a plain class: dataclasses costs ms of import)."""

    def __init__(self, cfg: dict, bundle: str, rootfs: str, state_dir: str, msg_w: int, ack_r: int, *,
                 stdio: tuple[int, int, int] = (0, 1, 2), fifo_path: str = "", seccomp_filter: object = None,
                 console_fd: int = -1, want_hooks: bool = False, init_argv: list[str] | None = None,
                 python_init: bool = False, preserve_fds: int = 0, cgroup_dirs: dict[str, str] | None = None,
                 cgroup_fd: int = -1):
        self.cfg = cfg
        self.bundle = bundle
        self.rootfs = rootfs
        self.state_dir = state_dir
        self.msg_w = msg_w
        self.ack_r = ack_r
        self.stdio = stdio
        self.fifo_path = fifo_path
        self.seccomp_filter = seccomp_filter
        self.console_fd = console_fd
        self.want_hooks = want_hooks
        self.init_argv = init_argv  # args replaced for org.berth.init (catatonit)
        self.python_init = python_init  # org.berth.init without catatonit: reaper.py stays pid 1
        self.preserve_fds = preserve_fds
        self.cgroup_dirs = cgroup_dirs
        self.cgroup_fd = cgroup_fd  # the container's cgroup2 directory, open: the init is born in it (cgroup_fork)
        self.runtime_uts = os.stat("/proc/self/ns/uts").st_ino  # built in the caller, before any setns


def err_text(e: BaseException) -> str:
    if isinstance(e, OSError):
        if e.strerror and e.filename and str(e.filename) not in e.strerror:
            return f"{e.strerror}: {e.filename}"
        return e.strerror or str(e)
    return str(e) or type(e).__name__


def _dup_stdio(stdio: tuple[int, int, int]) -> None:
    # dup first to fresh fds so that e.g. (1, 0, 2) swaps correctly
    tmp = [os.dup(fd) for fd in stdio]
    for i, fd in enumerate(tmp):
        os.dup2(fd, i, inheritable=True)
        os.close(fd)


def _import_before_namespaces(ctx: InitContext) -> None:
    """Import every module the children may import later, while still the caller's user: once in a new
    user namespace the mapped root may be unable to read the interpreter's directory (e.g. under a 0700
    /root), and after pivot_root the host's stdlib is gone."""
    import fcntl  # noqa: F401 - linux.loopback_up, the console
    import struct  # noqa: F401

    hooks = ctx.cfg.get("hooks") or {}
    # socket costs 4 ms of a command-line start: only for the console, and for hooks (run through subprocess)
    if (ctx.cfg.get("process") or {}).get("terminal") or any(hooks.values()):
        import socket  # noqa: F401
        import termios  # noqa: F401

    if hooks.get("createContainer") or hooks.get("startContainer"):
        from . import hooks as _hooks  # noqa: F401
    if ctx.python_init:
        from . import reaper  # noqa: F401


def _mark_init() -> None:
    """Name this process, and so the init it forks from birth, apart from `create` (sync.INIT_COMM): a
    monitor must never take the init, blocked until `start`, for the create whose pid it lost."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(INIT_COMM)
    except OSError:
        pass


def intermediate(ctx: InitContext) -> None:
    """Runs in the first child; never returns."""
    code = 1
    try:
        _mark_init()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _import_before_namespaces(ctx)
        _dup_stdio(ctx.stdio)
        linux = ctx.cfg.get("linux") or {}
        nss = {ns["type"]: ns.get("path") or None for ns in linux.get("namespaces") or []}
        # open every namespace to join before entering any (paths are host paths)
        join = [(t, os.open(p, os.O_RDONLY | os.O_CLOEXEC)) for t, p in nss.items() if p]
        join.sort(key=lambda x: (x[0] != "user", x[0] == "mount"))
        for t, fd in join:
            L.setns(fd, L.NAMESPACES[t][0])
            os.close(fd)
        new = [t for t, p in nss.items() if not p]
        if "user" in new:
            L.unshare(L.CLONE_NEWUSER)
            send(ctx.msg_w, "userns")
            wait_ack(ctx.ack_r)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        # the cgroup namespace is made by the init once the caller has moved it into its cgroup
        flags = 0
        for t in new:
            if t not in ("user", "time", "cgroup"):
                flags |= L.NAMESPACES[t][0]
        if flags:
            L.unshare(flags)
        if "network" in new:
            L.loopback_up()  # a fresh network namespace has lo down; containers expect it up
        placed = False
        if ctx.cgroup_fd >= 0:
            try:
                pid, placed = fork_into_cgroup(ctx.cgroup_fd), True
            except OSError:
                pid = os.fork()  # a kernel without clone3 into a cgroup: the caller moves the init instead
        else:
            pid = os.fork()
        if pid == 0:
            container_init(ctx, set(new), placed)
        # "placed": born in its cgroup2 directory, it joins the v1 ones itself; else the caller moves it
        send(ctx.msg_w, f"pid {pid} placed" if placed else f"pid {pid}")
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything goes to the caller as one line
        try:
            send(ctx.msg_w, "error " + err_text(e))
        except OSError:
            pass
    os._exit(code)


def container_init(ctx: InitContext, ns_new: set[str], placed: bool = False) -> None:
    """pid 1 of the container; never returns. `placed`: born in the container's cgroup2 directory (it then
    joins the cgroup v1 directories itself, once the caller has made them)."""
    try:
        os.setsid()
        cfg = ctx.cfg
        linux = cfg.get("linux") or {}
        proc = dict(cfg["process"])
        if ctx.init_argv:
            proc["args"] = ctx.init_argv
        joined = False

        def join_cgroup() -> None:
            # the caller makes the cgroup (and, unless we were born in it, writes our pid into cgroup.procs:
            # that migration waits for an RCU grace period) while we build the rootfs
            nonlocal joined
            if not joined:
                wait_ack(ctx.ack_r)
                if placed:
                    join_v1_self([d for key, d in (ctx.cgroup_dirs or {}).items() if key != UNIFIED])
                if "cgroup" in ns_new:
                    L.unshare(L.CLONE_NEWCGROUP)
                joined = True

        # mounts and pivot_root only in a mount namespace of our own: in a shared or joined one
        # they would land on the host (pivot_root even moves the root of every process there)
        mnt_ns = "mount" in ns_new
        if mnt_ns:
            rootfs.prepare(cfg, ctx.bundle, ctx.rootfs, ns_new, before_cgroup_mount=join_cgroup,
                           cgroup_dirs=ctx.cgroup_dirs)
        join_cgroup()
        if mnt_ns and ctx.init_argv and ctx.init_argv[0] == "/dev/.berth-init":
            target = os.path.join(ctx.rootfs, "dev/.berth-init")
            rootfs._touch(target)
            L.mount("/usr/bin/catatonit", target, None, L.MS_BIND)
            L.mount(None, target, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY)
        if ctx.want_hooks:
            send(ctx.msg_w, "hooks")  # the caller runs prestart + createRuntime hooks now
            wait_ack(ctx.ack_r)
        hooks = (cfg.get("hooks") or {}).get("createContainer")
        if hooks:
            from .hooks import run_hooks

            run_hooks(hooks, _creating_state(ctx), "createContainer")
        # the state dir, held open across pivot_root/chroot: exec.fifo is opened relative to it
        fifo_fd = os.open(os.path.dirname(ctx.fifo_path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # everything imported lazily later must be imported now: pivot_root hides the host's stdlib
        if proc.get("terminal"):
            import fcntl  # noqa: F401
            import socket  # noqa: F401
            import termios  # noqa: F401
        if (cfg.get("hooks") or {}).get("startContainer"):
            from . import hooks as _hooks  # noqa: F401
        if ctx.python_init:
            from . import reaper
        if mnt_ns:
            rootfs.pivot(ctx.rootfs)
            rootfs.finish_propagation(cfg)
        else:
            os.chroot(ctx.rootfs)
            os.chdir("/")
        if "uts" in ns_new or _joined_foreign_uts(linux, ctx.runtime_uts):  # never the runtime's own hostname
            if cfg.get("hostname"):
                L.sethostname(cfg["hostname"])
            if cfg.get("domainname"):
                L.setdomainname(cfg["domainname"])
        for key, value in (linux.get("sysctl") or {}).items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        if proc.get("terminal"):
            _setup_console(ctx.console_fd, mnt_ns)
        if mnt_ns:
            rootfs.readonly_paths(linux.get("readonlyPaths") or [])
            rootfs.mask_paths(linux.get("maskedPaths") or [])
        if mnt_ns and (cfg.get("root") or {}).get("readonly"):
            rootfs.readonly_root()

        def wait_start() -> None:
            send(ctx.msg_w, "ready")
            os.close(ctx.msg_w)
            os.close(ctx.ack_r)
            fd = os.open(os.path.basename(ctx.fifo_path), os.O_WRONLY | os.O_CLOEXEC, dir_fd=fifo_fd)
            os.write(fd, b"0")
            os.close(fd)
            os.close(fifo_fd)
            start_hooks = (cfg.get("hooks") or {}).get("startContainer")
            if start_hooks:
                from .hooks import run_hooks

                run_hooks(start_hooks, _creating_state(ctx, "running"), "startContainer")

        ready = False

        def before_exec() -> None:
            nonlocal ready
            ready = True
            wait_start()
            if ctx.python_init:
                reaper.fork_and_reap()

        process.finalize(proc, ctx.seccomp_filter, before_exec=before_exec, preserve_fds=ctx.preserve_fds,
                         keep_fds=(ctx.msg_w, ctx.ack_r, fifo_fd))
    except BaseException as e:  # noqa: BLE001
        text = err_text(e)
        try:
            if "ready" in locals() and ready:
                os.write(2, f"berth-runtime: container init: {text}\n".encode())
            else:
                send(ctx.msg_w, "error " + text)
        except OSError:
            pass
    os._exit(127)


def _joined_foreign_uts(linux: dict, runtime_uts: int) -> bool:
    """A UTS namespace joined by path that is not the one the runtime itself runs in."""
    for ns in linux.get("namespaces") or []:
        if ns.get("type") == "uts" and ns.get("path"):
            try:
                return os.stat("/proc/self/ns/uts").st_ino != runtime_uts
            except OSError:
                return False
    return False


def _creating_state(ctx: InitContext, status: str = "created") -> dict:
    return {"ociVersion": ctx.cfg.get("ociVersion"), "id": os.path.basename(ctx.state_dir), "status": status,
            "pid": _host_pid(), "bundle": ctx.bundle, "annotations": ctx.cfg.get("annotations") or {}}


def _host_pid() -> int:
    # our pid as the host sees it: NSpid's first field
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return os.getpid()


def _setup_console(sock_fd: int, mnt_ns: bool = True) -> None:
    import fcntl
    import socket
    import termios

    master, slave = os.openpty()
    name = os.ttyname(slave)
    if sock_fd >= 0:
        sock = socket.socket(fileno=sock_fd)
        socket.send_fds(sock, [name.encode()], [master])
        sock.close()
    os.close(master)
    if mnt_ns and os.path.exists("/dev"):
        rootfs_console = "/dev/console"
        if not os.path.exists(rootfs_console):
            os.close(os.open(rootfs_console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        L.mount(name, rootfs_console, None, L.MS_BIND)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for i in range(3):
        os.dup2(slave, i)
    if slave > 2:
        os.close(slave)
    sys.stdin = sys.stdout = sys.stderr = None  # type: ignore[assignment]
