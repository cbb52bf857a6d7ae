"""The one runtime seam: every runtime verb of a container goes through an OCIRuntime.

    rt = oci.get("runc", state_root)          # or "berth", "crun"
    rt.prepare(bundle); rt.create(cid, bundle); rt.start(cid); rt.state(cid)["status"]
    rt.kill(cid, signal.SIGTERM); rt.pause(cid); rt.resume(cid); rt.exec(cid, ["ps"]); rt.delete(cid, force=True)

Berth's native runtime is called in-process (no interpreter start per verb); runc and crun by their command
line. The monitor runs `create`/`start` in a child itself (it must own the container's stdio and never block):
Berth's runtime in a fork of the monitor (monitor/forking.py), the others by the argv the seam gives it
(`create_argv`, `start_argv`), after the rootfs preparation the seam says (`prepare`).

All implementations raise the native runtime's errors (workers.engine.runtime.errors): ContainerNotFound,
InvalidState, RuntimeError_ — callers never parse a runtime's message text themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as _signal
import subprocess
from pathlib import Path

from workers.engine.runtime import errors as rterr
from workers.engine.runtime.api import parse_signal

from . import rootfs_mount

RUNTIMES = ("berth", "runc", "crun")
CLI_TIMEOUT = 120.0


class RuntimeUnavailable(Exception):
    """The named runtime is unknown or not installed on this host."""


class OCIRuntime:
    """The verbs every runtime offers; ids and bundles as in the OCI runtime spec."""

    name = ""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = str(Path(root).resolve())

    # -- what the monitor spawns -----------------------------------------------------------

    def command(self) -> list[str]:
        """argv prefix of this runtime's runc-compatible command line (global options included)."""
        raise NotImplementedError

    def prepare(self, bundle: str | os.PathLike[str]) -> None:
        """Make the bundle runnable by this runtime before `create` (e.g. mount its rootfs)."""

    def create_argv(self, id: str, bundle: str, *, pid_file: str, console_socket: str | None = None) -> list[str]:
        argv = [*self.command(), "create", "--bundle", str(bundle), "--pid-file", pid_file]
        if console_socket:
            argv += ["--console-socket", console_socket]
        return [*argv, id]

    def start_argv(self, id: str) -> list[str]:
        return [*self.command(), "start", id]

    def exec_argv(self, id: str, process_file: str, *, pid_file: str, console_socket: str | None = None) -> list[str]:
        """`exec --detach` of a full OCI process (a JSON file): the monitor owns the process's stdio."""
        argv = [*self.command(), "exec", "--detach", "--pid-file", pid_file, "--process", process_file]
        if console_socket:
            argv += ["--console-socket", console_socket]
        return [*argv, id]

    # -- verbs --------------------------------------------------------------------------------

    def create(self, id: str, bundle: str | os.PathLike[str], *, stdin: int = 0, stdout: int = 1, stderr: int = 2,
               pid_file: str | None = None, console_socket: str | None = None) -> None:
        raise NotImplementedError

    def start(self, id: str) -> None:
        raise NotImplementedError

    def state(self, id: str) -> dict:
        """OCI state: {"id", "status": created|running|paused|stopped, "pid", "bundle", ...}."""
        raise NotImplementedError

    def kill(self, id: str, sig: int | str = _signal.SIGTERM, all: bool = False) -> None:
        raise NotImplementedError

    def pause(self, id: str) -> None:
        raise NotImplementedError

    def resume(self, id: str) -> None:
        raise NotImplementedError

    def delete(self, id: str, force: bool = False, *, bundle: str | os.PathLike[str] | None = None) -> None:
        """Remove the container (killed first with force). `bundle`: undo `prepare` even when the runtime
        no longer knows the container."""
        raise NotImplementedError

    def exec(self, id: str, args: list[str], *, env: list[str] | None = None, cwd: str | None = None,
             tty: bool = False, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
        """Run `args` inside the running container, in the foreground; its exit code."""
        raise NotImplementedError

    def oom_killed(self, id: str) -> bool | None:
        """Whether the kernel OOM-killed in the container's cgroup; None: ask the cgroup (the runtime cannot)."""
        return None

    def describe(self) -> dict:
        return {"name": self.name, "root": self.root}


class BerthRuntime(OCIRuntime):
    """Berth's own runtime, in-process (its CLI for what the monitor spawns)."""

    name = "berth"

    def __init__(self, root: str | os.PathLike[str]):
        super().__init__(root)
        from workers.engine.runtime.api import Runtime

        self.rt = Runtime(self.root)

    def command(self) -> list[str]:
        from workers.engine import runtime

        return [*runtime.command(), "--root", self.root]

    def create(self, id, bundle, *, stdin=0, stdout=1, stderr=2, pid_file=None, console_socket=None) -> None:
        self.rt.create(id, str(bundle), stdin=stdin, stdout=stdout, stderr=stderr, pid_file=pid_file,
                       console_socket=console_socket)

    def start(self, id: str) -> None:
        self.rt.start(id)

    def state(self, id: str) -> dict:
        return self.rt.state(id)

    def kill(self, id: str, sig: int | str = _signal.SIGTERM, all: bool = False) -> None:
        self.rt.kill(id, sig, all=all)

    def pause(self, id: str) -> None:
        self.rt.pause(id)

    def resume(self, id: str) -> None:
        self.rt.resume(id)

    def delete(self, id: str, force: bool = False, *, bundle=None) -> None:
        self.rt.delete(id, force=force)  # its rootfs was never mounted on the host

    def exec(self, id, args, *, env=None, cwd=None, tty=False, stdin=0, stdout=1, stderr=2) -> int:
        return self.rt.exec(id, list(args), env=env, cwd=cwd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)

    def oom_killed(self, id: str) -> bool | None:
        return bool(self.rt.oom_killed(id))


class CliRuntime(OCIRuntime):
    """runc, crun (or any runtime with runc's command line) by its command line."""

    def __init__(self, name: str, cmd: list[str], root: str | os.PathLike[str]):
        super().__init__(root)
        self.name = name
        self.cmd = list(cmd)  # binary (+ global options other than --root)

    def command(self) -> list[str]:
        return [*self.cmd, "--root", self.root]

    def _run(self, args: list[str], *, stdin: int | None = subprocess.DEVNULL, stdout: int | None = None,
             stderr: int | None = None) -> subprocess.CompletedProcess:
        out = subprocess.PIPE if stdout is None else stdout
        err = subprocess.PIPE if stderr is None else stderr
        try:
            p = subprocess.run([*self.command(), *args], stdin=stdin, stdout=out, stderr=err, timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise rterr.RuntimeError_(f"{self.name} {args[0]} did not finish in {CLI_TIMEOUT:g} s") from None
        if p.returncode != 0:
            raise _error(self.name, args[0], (p.stderr or b"").decode("utf-8", "replace") if err is subprocess.PIPE
                         else "")
        return p

    def prepare(self, bundle) -> None:
        try:
            rootfs_mount.mount(bundle)
        except OSError as e:
            raise rterr.RuntimeError_(f"cannot mount the container's root filesystem: {e.strerror or e}") from None

    def create(self, id, bundle, *, stdin=0, stdout=1, stderr=2, pid_file=None, console_socket=None) -> None:
        self.prepare(bundle)
        argv = self.create_argv(id, str(Path(bundle).resolve()), pid_file=pid_file or os.devnull,
                                console_socket=console_socket)
        if pid_file is None:
            i = argv.index("--pid-file")
            del argv[i:i + 2]
        # runc's create detaches, but the container keeps our stdio: the runtime's own errors go to a pipe only
        # when the caller gave none
        self._run(argv[len(self.command()):], stdin=stdin, stdout=stdout, stderr=None if stderr == 2 else stderr)

    def start(self, id: str) -> None:
        self._run(["start", id])

    def state(self, id: str) -> dict:
        p = self._run(["state", id])
        try:
            return json.loads(p.stdout)
        except ValueError:
            raise rterr.RuntimeError_(f"{self.name} state: unreadable answer") from None

    def kill(self, id: str, sig: int | str = _signal.SIGTERM, all: bool = False) -> None:
        signum = parse_signal(sig)
        self._run(["kill", *(["--all"] if all else []), id, str(signum)])

    def pause(self, id: str) -> None:
        self._run(["pause", id])

    def resume(self, id: str) -> None:
        self._run(["resume", id])

    def delete(self, id: str, force: bool = False, *, bundle=None) -> None:
        if bundle is None:
            try:
                bundle = self.state(id).get("bundle")
            except rterr.ContainerNotFound:
                raise
            except rterr.RuntimeError_:
                bundle = None
        try:
            self._run(["delete", *(["--force"] if force else []), id])
        finally:
            if bundle:
                try:
                    rootfs_mount.unmount(bundle)
                except OSError as e:
                    raise rterr.RuntimeError_(f"cannot unmount the container's root filesystem: "
                                              f"{e.strerror or e}") from None

    def exec(self, id, args, *, env=None, cwd=None, tty=False, stdin=0, stdout=1, stderr=2) -> int:
        argv = [*self.command(), "exec"]
        for item in env or []:
            argv += ["--env", item]
        if cwd:
            argv += ["--cwd", cwd]
        if tty:
            argv.append("--tty")
        p = subprocess.run([*argv, id, *args], stdin=stdin, stdout=stdout, stderr=stderr)
        return p.returncode


def _error(name: str, verb: str, text: str) -> rterr.RuntimeError_:
    """A runtime's failure as the native runtime's error class, from the few messages runc and crun use."""
    line = " ".join(text.split())[:500] or f"{name} {verb} failed"
    low = line.lower()
    if "does not exist" in low or "not found" in low or (verb in ("state", "delete", "kill", "pause", "resume",
                                                                  "start", "exec")
                                                         and "no such file or directory" in low):
        return rterr.ContainerNotFound(line)
    if ("not running" in low or "not paused" in low or "not stopped" in low or "is stopped" in low
            or "cannot" in low and "state" in low or "container not" in low):
        return rterr.InvalidState(line)
    return rterr.RuntimeError_(line)


# ---- choosing a runtime -------------------------------------------------------------------------------------


def binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


def get(name: str, state_root: str | os.PathLike[str]) -> OCIRuntime:
    """The runtime `name` with its state under <state_root>/<runtime dir> (berth: runtime/, others: their name)."""
    root = Path(state_root)
    if name == "berth":
        return BerthRuntime(root / "runtime")
    if name in RUNTIMES:
        path = binary(name)
        if path is None:
            raise RuntimeUnavailable(f"{name} is not installed on this host")
        return CliRuntime(name, [path], root / name)
    raise RuntimeUnavailable(f"unknown runtime {name!r} (known: {', '.join(RUNTIMES)})")


def is_berth_command(cmd: list[str]) -> bool:
    return ("workers.engine.runtime" in cmd  # `-m`, as records made before runtime.command() have it
            or any(a.endswith("/workers/engine/runtime/__main__.py") for a in cmd[1:3])  # runtime.command()
            or os.path.basename(cmd[0]) == "berth-runtime")


def from_command(cmd: list[str] | None, default_root: str | os.PathLike[str]) -> OCIRuntime:
    """The runtime behind a runc-style argv prefix (the monitor's protocol names runtimes that way)."""
    if not cmd:
        return BerthRuntime(default_root)
    rest, root = [], None
    it = iter(range(len(cmd)))
    for i in it:
        if cmd[i] == "--root" and i + 1 < len(cmd):
            root = cmd[i + 1]
            next(it, None)
        elif cmd[i].startswith("--root="):
            root = cmd[i].split("=", 1)[1]
        else:
            rest.append(cmd[i])
    if is_berth_command(cmd):
        return BerthRuntime(root or default_root)
    name = os.path.basename(rest[0])
    return CliRuntime(name, rest, root or f"/run/{name}")
