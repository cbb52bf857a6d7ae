"""`exec`: a new process in a running container's namespaces and cgroup.

A relay child joins the cgroup and the namespaces (user first, mount last), forks the
process (so it lands in the container's pid namespace), reports its pid and, in the
foreground, waits for it and exits with its status.
"""

from __future__ import annotations

import os
import signal

from . import process  # imported before fork: after setns(mnt) the host's files are out of reach
from .errors import RuntimeError_
from .init import err_text
from .sync import send

# setns order: user first (it grants the rights for the others), mount last
_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def exec_in(st: dict, cg, proc: dict, *, stdio=(0, 1, 2), detach=False, pid_file=None, console_socket=None,
            preserve_fds: int = 0) -> int:
    from . import linux as L
    from . import state as S

    init = st["pid"]
    cfg = st.get("config") or {}
    types = [t for t in _ORDER if t in (st.get("namespaces") or {})]
    ns_fds = []
    fds: list[int] = []
    try:
        for t in types:
            try:
                fd = os.open(f"/proc/{init}/ns/{L.NAMESPACES[t][1]}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise RuntimeError_("cannot exec in a stopped container") from None
            fds.append(fd)
            ns_fds.append((t, fd))
        seccomp_filter = None
        sec = (cfg.get("linux") or {}).get("seccomp")
        if sec:
            from .seccomp_filter import compile_bpf

            seccomp_filter = compile_bpf(sec, bool(proc.get("noNewPrivileges")))
        console_fd = -1
        proxy_conn = None
        if proc.get("terminal"):
            import socket

            if console_socket:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(console_socket)
            else:  # foreground without a console socket: we receive the pty and copy it to our stdio
                s, proxy_conn = socket.socketpair()
                fds.append(proxy_conn.fileno())
            console_fd = s.detach()
            fds.append(console_fd)
        msg_r, msg_w = os.pipe()
        fds += [msg_r, msg_w]
        relay = os.fork()
        if relay == 0:
            _relay(cg, ns_fds, proc, seccomp_filter, stdio, msg_w, console_fd, detach, preserve_fds)
        os.close(msg_w)
        fds.remove(msg_w)
        data = b""
        while True:
            chunk = os.read(msg_r, 4096)
            if not chunk:
                break
            data += chunk
        pid = 0
        err = None
        for line in data.decode(errors="replace").splitlines():
            kind, _, arg = line.partition(" ")
            if kind == "pid":
                pid = int(arg)
            elif kind == "error":
                err = err or arg
        if err or not pid:
            os.waitpid(relay, 0)
            raise RuntimeError_(err or "exec: the process could not be started")
        if pid_file:
            S.write_pid_file(pid_file, pid)
        if detach:
            os.waitpid(relay, 0)
            return 0
        if proxy_conn is not None:
            import socket

            os.close(console_fd)
            fds.remove(console_fd)
            _, got, _, _ = socket.recv_fds(proxy_conn, 1024, 1)
            if got:
                from .console import proxy

                proxy(got[0], stdio[0], stdio[1])
        _, status = os.waitpid(relay, 0)
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _relay(cg, ns_fds, proc, seccomp_filter, stdio, msg_w, console_fd, detach, preserve_fds) -> None:
    import fcntl  # noqa: F401 - for the console, imported while the host's stdlib is visible
    import socket  # noqa: F401
    import termios  # noqa: F401

    from . import linux as L
    from .init import _dup_stdio

    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _dup_stdio(stdio)
        cg.join(os.getpid())
        for t, fd in ns_fds:
            L.setns(fd, L.NAMESPACES[t][0])
        pid = os.fork()
        if pid == 0:
            _exec_child(proc, seccomp_filter, msg_w, console_fd, preserve_fds)
        send(msg_w, f"pid {pid}")
        os.close(msg_w)
        if detach:
            os._exit(0)
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(s, lambda signum, _f: os.kill(pid, signum))
        signal.signal(signal.SIGINT, lambda signum, _f: os.kill(pid, signum))
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    except BaseException as e:  # noqa: BLE001
        try:
            send(msg_w, "error " + err_text(e))
        except OSError:
            pass
    os._exit(code)


def _exec_child(proc, seccomp_filter, msg_w, console_fd, preserve_fds) -> None:
    try:
        if proc.get("terminal"):
            os.setsid()
            _setup_console_exec(console_fd)
        process.finalize(proc, seccomp_filter, preserve_fds=preserve_fds, keep_fds=(msg_w,))
    except BaseException as e:  # noqa: BLE001
        try:
            send(msg_w, "error " + err_text(e))
        except OSError:
            pass
    os._exit(127)


def _setup_console_exec(sock_fd: int) -> None:
    import fcntl
    import socket
    import termios

    master, slave = os.openpty()
    if sock_fd >= 0:
        sock = socket.socket(fileno=sock_fd)
        socket.send_fds(sock, [os.ttyname(slave).encode()], [master])
        sock.close()
    os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for i in range(3):
        os.dup2(slave, i)
    if slave > 2:
        os.close(slave)
