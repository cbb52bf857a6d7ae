"""The last steps of a container process before execve, shared by the init and by exec:
rlimits, oom_score_adj, user and groups, capabilities, no_new_privs, cwd, seccomp."""

from __future__ import annotations

import _signal as signal  # signal's own functions and numbers, without its enum import (see jsonfast)
import os
import resource  # imported here: after pivot_root the host's stdlib is out of reach

from ..defaults import DEFAULT_PATH
from . import caps as C
from . import linux as L


def apply_rlimits(rlimits: list[dict] | None) -> None:
    if not rlimits:
        return
    for rl in rlimits:
        res = getattr(resource, rl["type"], None)
        if res is None:
            raise OSError(22, f"unknown rlimit {rl['type']}")
        resource.setrlimit(res, (int(rl.get("soft", 0)), int(rl.get("hard", 0))))


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def set_user(user: dict | None) -> None:
    """setgroups/setgid/setuid keeping the permitted capabilities for the capset that follows."""
    user = user or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    L.prctl(L.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(groups)
    except PermissionError:
        if groups:
            raise  # in a user namespace with setgroups denied, only an empty list is fine
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    L.prctl(L.PR_SET_KEEPCAPS, 0)
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    else:
        os.umask(0o022)


def lookup(arg0: str, env: list[str]) -> str:
    """execvp's search, with the PATH of the container's environment."""
    if "/" in arg0:
        if not os.path.exists(arg0):
            raise FileNotFoundError(2, f'exec: "{arg0}": stat {arg0}: no such file or directory')
        return arg0
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    for d in path.split(":"):
        cand = os.path.join(d or ".", arg0)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError(2, f'exec: "{arg0}": executable file not found in $PATH')


def reset_signals() -> None:
    """Undo what Python set (SIGPIPE/SIGXFSZ ignored, SIGINT handled): ignored stays across exec."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) != signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def close_fds(first: int, keep: tuple[int, ...] = ()) -> None:
    """Close every fd >= first except `keep`, with close_range (a seccomp profile may refuse
    close_range: Python then falls back to one close() per possible fd, so this runs before
    any filter is loaded)."""
    lo = first
    for k in sorted(k for k in keep if k >= first):
        if k > lo:
            os.closerange(lo, k)
        lo = k + 1
    os.closerange(lo, 1 << 20)


def finalize(proc: dict, seccomp_filter, *, before_exec=None, preserve_fds: int = 0,
             keep_fds: tuple[int, ...] = ()) -> None:
    """Apply the process settings and exec; `before_exec` runs after the user switch
    (the init's exec.fifo wait) and must close the `keep_fds` it needs. Never returns."""
    close_fds(3 + preserve_fds, keep_fds)  # nothing of the runtime leaks into the container
    for fd in range(3, 3 + preserve_fds):  # --preserve-fds: the caller's fds 3.. go through exec
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    apply_rlimits(proc.get("rlimits"))
    set_oom_score_adj(proc.get("oomScoreAdj"))
    nnp = bool(proc.get("noNewPrivileges"))
    capabilities = proc.get("capabilities")
    if seccomp_filter is not None and not nnp:
        seccomp_filter.load()  # without no_new_privs loading needs CAP_SYS_ADMIN: before the drop
    C.drop_bounding(capabilities)
    set_user(proc.get("user"))
    C.apply(capabilities)
    if capabilities is None and int((proc.get("user") or {}).get("uid", 0)) != 0:
        L.capset(0, 0, 0)
    if nnp:
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    env = proc.get("env") or []
    args = proc["args"]
    try:
        os.chdir(proc.get("cwd") or "/")
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd ({proc.get('cwd')!r}) set in config.json failed: {e.strerror}") from None
    if not any(e.startswith("HOME=") for e in env):  # as runc: HOME from the container's passwd
        env = list(env) + ["HOME=" + _home_of(int((proc.get("user") or {}).get("uid", 0)))]
    exe = lookup(args[0], env)
    if before_exec is not None:
        before_exec()
    reset_signals()
    if seccomp_filter is not None and nnp:
        seccomp_filter.load()
    os.execve(exe, args, dict(_env_pairs(env)))


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def _env_pairs(env: list[str]):
    for e in env:
        k, sep, v = e.partition("=")
        if sep:
            yield k, v
