"""runc-compatible command line: `python -m workers.engine.runtime [--root DIR] COMMAND ...`.

Errors are one line on stderr in runc's format (`time=... level=error msg="..."`), exit 1;
`run` and `exec` in the foreground exit with the container process's code. Global flags
tools pass to runc (--log, --log-format, --debug, --systemd-cgroup, --criu, --rootless)
are accepted; --log also receives the error line (JSON with --log-format json).
"""

from __future__ import annotations

import os
import sys

from ..timefmt import rfc3339

VERSION = "berth-runtime 0.1.0\nspec: 1.0.2"

# flag -> (canonical name, takes value, repeatable)
_GLOBAL = {
    "--root": ("root", True, False), "--log": ("log", True, False), "--log-format": ("log_format", True, False),
    "--debug": ("debug", False, False), "--systemd-cgroup": ("systemd_cgroup", False, False),
    "--criu": ("criu", True, False), "--rootless": ("rootless", True, False),
}
_COMMANDS: dict[str, dict] = {
    "create": {"--bundle": ("bundle", True, False), "-b": ("bundle", True, False),
               "--console-socket": ("console_socket", True, False), "--pid-file": ("pid_file", True, False),
               "--no-pivot": ("no_pivot", False, False), "--no-new-keyring": ("no_new_keyring", False, False),
               "--preserve-fds": ("preserve_fds", True, False)},
    "run": {"--bundle": ("bundle", True, False), "-b": ("bundle", True, False),
            "--console-socket": ("console_socket", True, False), "--pid-file": ("pid_file", True, False),
            "--detach": ("detach", False, False), "-d": ("detach", False, False), "--keep": ("keep", False, False),
            "--no-subreaper": ("no_subreaper", False, False), "--no-pivot": ("no_pivot", False, False),
            "--no-new-keyring": ("no_new_keyring", False, False), "--preserve-fds": ("preserve_fds", True, False)},
    "start": {}, "state": {}, "pause": {}, "resume": {},
    "kill": {"--all": ("all", False, False), "-a": ("all", False, False)},
    "delete": {"--force": ("force", False, False), "-f": ("force", False, False)},
    "exec": {"--console-socket": ("console_socket", True, False), "--cwd": ("cwd", True, False),
             "--env": ("env", True, True), "-e": ("env", True, True), "--tty": ("tty", False, False),
             "-t": ("tty", False, False), "--user": ("user", True, False), "-u": ("user", True, False),
             "--additional-gids": ("gids", True, True), "-g": ("gids", True, True),
             "--process": ("process", True, False), "-p": ("process", True, False),
             "--detach": ("detach", False, False), "-d": ("detach", False, False),
             "--pid-file": ("pid_file", True, False), "--process-label": ("label", True, False),
             "--apparmor": ("apparmor", True, False), "--no-new-privs": ("no_new_privs", False, False),
             "--cap": ("cap", True, True), "-c": ("cap", True, True), "--preserve-fds": ("preserve_fds", True, False),
             "--cgroup": ("cgroup", True, True), "--ignore-paused": ("ignore_paused", False, False)},
    "ps": {"--format": ("format", True, False), "-f": ("format", True, False)},
    "list": {"--format": ("format", True, False), "-f": ("format", True, False),
             "--quiet": ("quiet", False, False), "-q": ("quiet", False, False)},
    "spec": {"--bundle": ("bundle", True, False), "-b": ("bundle", True, False), "--rootless": ("rootless", False, False)},
    "update": {"--resources": ("resources", True, False), "-r": ("resources", True, False),
               "--memory": ("memory", True, False), "--memory-swap": ("memory_swap", True, False),
               "--memory-reservation": ("memory_reservation", True, False), "--cpu-shares": ("cpu_shares", True, False),
               "--cpu-quota": ("cpu_quota", True, False), "--cpu-period": ("cpu_period", True, False),
               "--cpuset-cpus": ("cpuset_cpus", True, False), "--cpuset-mems": ("cpuset_mems", True, False),
               "--pids-limit": ("pids_limit", True, False)},
    "events": {"--stats": ("stats", False, False), "--interval": ("interval", True, False)},
}


class UsageError(Exception):
    pass


def _parse(args: list[str], spec: dict, stop_at_positional: bool) -> tuple[dict, list[str]]:
    opts: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i + 1:]
            break
        if a.startswith("-") and a != "-" and not rest:
            name, eq, val = a.partition("=")
            if name not in spec and len(name) > 2 and name[1] != "-":
                name = "-" + name  # Go's flag package accepts -root as --root
            if name not in spec:
                raise UsageError(f"flag provided but not defined: {a.split('=')[0]}")
            key, takes, multi = spec[name]
            if takes:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"flag needs an argument: {name}")
                    val = args[i]
                opts.setdefault(key, []).append(val) if multi else opts.__setitem__(key, val)
            else:
                opts[key] = val.lower() not in ("false", "0") if eq else True
        else:
            rest.append(a)
            if stop_at_positional:
                rest += args[i + 1:]
                break
        i += 1
    return opts, rest


def _now() -> str:
    return rfc3339()


def error_line(msg: str) -> str:
    """An error as runc prints it (`time=... level=error msg="..."`): the engine reads the msg="..." part."""
    msg = " ".join(str(msg).split("\n"))
    esc = msg.replace("\\", "\\\\").replace('"', '\\"')
    return f'time="{_now()}" level=error msg="{esc}"\n'


def error_message(e: BaseException) -> str:
    """What the command line says about an exception a verb raised (never a traceback)."""
    from .errors import RuntimeError_

    if isinstance(e, (RuntimeError_, UsageError)):
        return str(e)
    if isinstance(e, OSError):
        return f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}"


def _fail(msg: str, g: dict) -> int:
    msg = " ".join(str(msg).split("\n"))
    esc = msg.replace("\\", "\\\\").replace('"', '\\"')
    sys.stderr.write(error_line(msg))
    log = g.get("log")
    if log:
        try:
            with open(log, "a") as f:
                if g.get("log_format") == "json":
                    import json

                    f.write(json.dumps({"level": "error", "msg": msg, "time": _now()}) + "\n")
                else:
                    f.write(f'time="{_now()}" level=error msg="{esc}"\n')
        except OSError:
            pass
    return 1


def _need(rest: list[str], n: int, cmd: str, usage: str) -> None:
    if len(rest) < n:
        raise UsageError(f'"{cmd}" requires a minimum of {n} argument{"s" if n > 1 else ""} (usage: {usage})')


def _default_root() -> str:
    base = os.environ.get("BERTH_STATE_ROOT")
    return os.path.join(base, "runtime") if base else "/run/berth-runtime"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    g: dict = {}
    try:
        g, rest = _parse(argv, dict(_GLOBAL, **{"--version": ("version", False, False), "-v": ("version", False, False),
                                                "--help": ("help", False, False), "-h": ("help", False, False)}), True)
        if g.get("version"):
            print(VERSION)
            return 0
        if not rest or g.get("help"):
            print("usage: berth-runtime [--root DIR] create|start|run|state|kill|delete|exec|pause|resume|ps|list|spec|update|events ...")
            return 0 if g.get("help") else 1
        cmd, args = rest[0], rest[1:]
        if cmd not in _COMMANDS:
            raise UsageError(f"No help topic for '{cmd}'")
        opts, pos = _parse(args, _COMMANDS[cmd], cmd in ("exec", "ps"))
        return _dispatch(cmd, opts, pos, g)
    except KeyboardInterrupt:
        return 130
    except UsageError as e:
        return _fail(str(e), g)
    except Exception as e:  # noqa: BLE001 - the CLI never prints a traceback
        from .errors import RuntimeError_

        if not isinstance(e, (RuntimeError_, OSError)) and os.environ.get("BERTH_RUNTIME_DEBUG"):
            raise
        return _fail(error_message(e), g)


def _dispatch(cmd: str, o: dict, pos: list[str], g: dict) -> int:
    from . import jsonfast as json  # not `json`: its import is a sixth of a `run` (see jsonfast)
    from .api import Runtime, dumps

    if cmd == "spec":
        return _spec(o)
    rt = Runtime(g.get("root") or _default_root())
    if cmd == "create":
        _need(pos, 1, cmd, "create [options] <container-id>")
        rt.create(pos[0], o.get("bundle") or os.getcwd(), pid_file=o.get("pid_file"),
                  console_socket=o.get("console_socket"), preserve_fds=int(o.get("preserve_fds") or 0))
        return 0
    if cmd == "run":
        _need(pos, 1, cmd, "run [options] <container-id>")
        return rt.run(pos[0], o.get("bundle") or os.getcwd(), pid_file=o.get("pid_file"),
                      console_socket=o.get("console_socket"), detach=bool(o.get("detach")),
                      forward_signals=True, keep=bool(o.get("keep")), preserve_fds=int(o.get("preserve_fds") or 0))
    if cmd == "exec":
        _need(pos, 1, cmd, "exec [options] <container-id> <command> [command options]")
        process = None
        if o.get("process"):
            with open(o["process"], "rb") as f:
                process = json.loads(f.read())
        elif len(pos) < 2:
            raise UsageError("exec: no command given (args or --process)")
        user = None
        if o.get("user"):
            u, _, gr = o["user"].partition(":")
            user = {"uid": int(u)}
            if gr:
                user["gid"] = int(gr)
        if o.get("gids"):
            user = dict(user or {}, additionalGids=[int(x) for x in o["gids"]])
        return rt.exec(pos[0], pos[1:], env=o.get("env"), cwd=o.get("cwd"), tty=bool(o.get("tty")),
                       process=process, user=user, detach=bool(o.get("detach")), pid_file=o.get("pid_file"),
                       console_socket=o.get("console_socket"), extra_caps=o.get("cap"),
                       no_new_privs=True if o.get("no_new_privs") else None,
                       preserve_fds=int(o.get("preserve_fds") or 0), ignore_paused=bool(o.get("ignore_paused")))
    if cmd == "list":
        items = rt.list()
        if o.get("quiet"):
            for s in items:
                print(s["id"])
        elif o.get("format") == "json":
            print(json.dumps(items))
        else:
            rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
            rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s.get("created") or "", s.get("owner") or "root") for s in items]
            widths = [max(len(r[i]) for r in rows) for i in range(6)]
            for r in rows:
                print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0
    _need(pos, 1, cmd, f"{cmd} <container-id>")
    cid = pos[0]
    if cmd == "start":
        rt.start(cid)
    elif cmd == "state":
        print(dumps(rt.state(cid)))
    elif cmd == "kill":
        rt.kill(cid, pos[1] if len(pos) > 1 else "SIGTERM", all=bool(o.get("all")))
    elif cmd == "delete":
        rt.delete(cid, force=bool(o.get("force")))
    elif cmd == "pause":
        rt.pause(cid)
    elif cmd == "resume":
        rt.resume(cid)
    elif cmd == "ps":
        pids = rt.ps(cid)
        if o.get("format") == "json":
            print(json.dumps(pids))
        else:
            import subprocess

            out = subprocess.run(["ps"] + (pos[1:] or ["-ef"]), capture_output=True, text=True).stdout.splitlines()
            if out:
                print(out[0])
                pid_col = out[0].split().index("PID") if "PID" in out[0].split() else 1
                for line in out[1:]:
                    cols = line.split()
                    if len(cols) > pid_col and cols[pid_col].isdigit() and int(cols[pid_col]) in pids:
                        print(line)
    elif cmd == "update":
        rt.update(cid, _update_resources(o))
    elif cmd == "events":
        print(json.dumps({"type": "stats", "id": cid, "data": rt.stats(cid)}))
    return 0


def _update_resources(o: dict) -> dict:
    import json

    if o.get("resources"):
        src = sys.stdin if o["resources"] == "-" else open(o["resources"])
        with src:
            return json.load(src)
    res: dict = {}
    mem = {k: int(o[f]) for k, f in (("limit", "memory"), ("swap", "memory_swap"), ("reservation", "memory_reservation")) if o.get(f)}
    cpu: dict = {k: int(o[f]) for k, f in (("shares", "cpu_shares"), ("quota", "cpu_quota"), ("period", "cpu_period")) if o.get(f)}
    cpu.update({k: o[f] for k, f in (("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")) if o.get(f)})
    if mem:
        res["memory"] = mem
    if cpu:
        res["cpu"] = cpu
    if o.get("pids_limit"):
        res["pids"] = {"limit": int(o["pids_limit"])}
    return res


def _spec(o: dict) -> int:
    import json

    from .spec import default_spec

    path = os.path.join(o.get("bundle") or ".", "config.json")
    if os.path.exists(path):
        raise UsageError("File config.json exists. Remove it first.")
    spec = default_spec(["sh"], terminal=True, rootless=bool(o.get("rootless")))
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    return 0
