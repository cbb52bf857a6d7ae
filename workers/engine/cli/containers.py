"""Container verbs, podman-like: run, create, start, stop, kill, restart, rm, ps, logs, inspect, pause,
unpause, wait. Engine errors print "Error: …" and exit 125; `run` in the foreground exits with the
container's own code (128+n when a signal n ended it, as Docker's) and forwards signals to it (sigproxy.py)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable

from ..containers import ContainerError, ContainerManager, volumes
from ..containers.config import parse_size
from ..containers.logs import parse_time
from ..containers.spec import ContainerSpec
from . import sigproxy
from .netflags import network_fields, network_flags

EXIT_ERROR = 125


def _manager(args: argparse.Namespace) -> ContainerManager:
    return ContainerManager(args.root, log_redis_url=os.environ.get("BERTH_LOG_REDIS_URL") or None,
                            default_network=os.environ.get("BERTH_DEFAULT_NETWORK", "bridge") or None)


def _engine_errors(fn):
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ContainerError as e:
            print(f"Error: {e}", file=sys.stderr)
            return EXIT_ERROR
    return wrapper


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _pairs(items: list[str] | None, *, from_env: bool = False) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq and from_env:
            if key not in os.environ:
                continue  # docker -e NAME: taken from our environment when set there
            value = os.environ[key]
        out[key] = value
    return out


def _create(args: argparse.Namespace, m: ContainerManager, *, auto_remove: bool = False) -> dict:
    command = list(args.command) or None
    return m.create(
        args.image, name=args.name or "", command=command,
        entrypoint=[args.entrypoint] if args.entrypoint is not None else None,
        env=_pairs(args.env, from_env=True), workdir=args.workdir, user=args.user, hostname=args.hostname,
        memory=parse_size(args.memory, "memory") if args.memory else None,
        memory_swap=(-1 if args.memory_swap == "-1" else parse_size(args.memory_swap, "memory_swap"))
        if args.memory_swap else None,
        cpus=args.cpus, cpu_shares=args.cpu_shares, pids_limit=args.pids_limit,
        restart_policy=args.restart, labels=_pairs(args.label), mounts=volumes.mounts_by_name(args.root, args.volume),
        read_only=args.read_only, tty=args.tty, disk=parse_size(args.disk, "disk") if args.disk else None,
        auto_remove=auto_remove, **network_fields(args))


def _since(text: str | None) -> float | None:
    """--since: unix seconds, an RFC 3339 time, or a duration back from now (30s, 5m, 2h)."""
    if not text:
        return None
    if text[-1:] in ("s", "m", "h") and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ContainerError(f"invalid --since {text!r}: use unix seconds, an RFC 3339 time or 30s/5m/2h") from None


def _stream(m: ContainerManager, ref: str, *, follow: bool, tail: int | None = None,
            timestamps: bool = False, since: float | None = None) -> None:
    for rec in m.logs(ref, follow=follow, tail=tail, timestamps=timestamps, since=since):
        out = sys.stderr if rec["stream"] == "stderr" else sys.stdout
        out.write(f"{rec['time']} {rec['log']}" if timestamps else rec["log"])
        out.flush()


@_engine_errors
def cmd_create(args) -> int:
    print(_create(args, _manager(args))["id"])
    return 0


@_engine_errors
def cmd_run(args) -> int:
    if args.rm:  # the spec's rule, before anything is made: --rm with a restart policy is refused
        ContainerSpec.from_json({"auto_remove": True, "restart_policy": args.restart})
    m = _manager(args)
    # -d --rm: the engine removes it when it exits (spec auto_remove: the host's monitor, or a supervise pass).
    # In the foreground this process removes it once it has read the exit code, which an engine-side removal
    # could take away first.
    c = _create(args, m, auto_remove=args.rm and args.detach)
    if args.detach:
        try:
            m.start(c["id"])
        except ContainerError:
            if args.rm:  # never started, so nobody would ever remove it
                with contextlib.suppress(ContainerError):
                    m.remove(c["id"], force=True)
            raise
        print(c["id"])
        return 0
    try:
        return _start_attached(m, c["id"], sig_proxy=args.sig_proxy, make_manager=lambda: _manager(args))
    finally:
        if args.rm:
            m.remove(c["id"], force=True)


def _start_attached(m: ContainerManager, ref: str, *, sig_proxy: bool,
                    make_manager: Callable[[], ContainerManager]) -> int:
    """Start, print the output until the container ends, and exit with its code: 128+n when signal n ended
    it (the monitor records it so), 255 when its status is unknown. With `sig_proxy` the signals this
    process gets go to the container meanwhile; without, Ctrl-C leaves it running and exits 130."""
    m.start(ref)
    proxy = sigproxy.forwarding(make_manager, ref) if sig_proxy else contextlib.nullcontext()
    try:
        with proxy:
            _stream(m, ref, follow=True)
            code = m.wait(ref)["exit_code"]
    except KeyboardInterrupt:  # only without the proxy: stop following, as `docker run --sig-proxy=false`
        return 128 + signal.SIGINT
    return 255 if code is None or code < 0 else code


def _each(args, action) -> int:
    rc = 0
    for ref in args.containers:
        try:
            action(ref)
            print(ref)
        except ContainerError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


@_engine_errors
def cmd_start(args) -> int:
    m = _manager(args)
    if args.attach:
        if len(args.containers) != 1:
            print("Error: --attach takes one container", file=sys.stderr)
            return EXIT_ERROR
        return _start_attached(m, args.containers[0], sig_proxy=args.sig_proxy, make_manager=lambda: _manager(args))
    return _each(args, m.start)


@_engine_errors
def cmd_stop(args) -> int:
    m = _manager(args)
    return _each(args, lambda ref: m.stop(ref, timeout=args.time))


@_engine_errors
def cmd_restart(args) -> int:
    m = _manager(args)
    return _each(args, lambda ref: m.restart(ref, timeout=args.time))


@_engine_errors
def cmd_kill(args) -> int:
    m = _manager(args)
    return _each(args, lambda ref: m.kill(ref, args.signal))


@_engine_errors
def cmd_pause(args) -> int:
    return _each(args, _manager(args).pause)


@_engine_errors
def cmd_unpause(args) -> int:
    return _each(args, _manager(args).unpause)


@_engine_errors
def cmd_rm(args) -> int:
    m = _manager(args)
    return _each(args, lambda ref: m.remove(ref, force=args.force))


@_engine_errors
def cmd_wait(args) -> int:
    m = _manager(args)
    for ref in args.containers:
        print(m.wait(ref)["exit_code"])
    return 0


@_engine_errors
def cmd_inspect(args) -> int:
    m = _manager(args)
    _print_json([m.inspect(ref) for ref in args.containers])
    return 0


@_engine_errors
def cmd_logs(args) -> int:
    _stream(_manager(args), args.container, follow=args.follow, tail=args.tail, timestamps=args.timestamps,
            since=_since(args.since))
    return 0


def _ago(stamp: str | None) -> str:
    if not stamp:
        return ""
    secs = max(0, int(time.time() - parse_time(stamp)))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = secs // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{secs} second{'s' if secs != 1 else ''}"


def _status(c: dict) -> str:
    state = c["state"]
    if state == "running":
        return f"Up {_ago(c['started_at'])}"
    if state == "paused":
        return f"Up {_ago(c['started_at'])} (Paused)"
    if state == "exited":
        return f"Exited ({c['exit_code']}) {_ago(c['finished_at'])} ago"
    return state.capitalize()


@_engine_errors
def cmd_ps(args) -> int:
    containers = _manager(args).list(all=args.all)
    if args.json or args.ps_json:
        _print_json(containers)
        return 0
    if args.quiet:
        for c in containers:
            print(c["id"][:12])
        return 0
    print(f"{'CONTAINER ID':<14}{'IMAGE':<22}{'COMMAND':<24}{'CREATED':<18}{'STATUS':<26}NAMES")
    for c in containers:
        cmd = " ".join((c["config"].get("entrypoint") or []) + (c["config"].get("command") or []))
        cmd = f'"{cmd[:19]}…"' if len(cmd) > 20 else f'"{cmd}"'
        print(f"{c['id'][:12]:<14}{c['image'][:21]:<22}{cmd:<24}{_ago(c['created']) + ' ago':<18}"
              f"{_status(c):<26}{c['name']}")
    return 0


def _create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("-h", "--hostname")
    p.add_argument("-m", "--memory", help="memory limit, e.g. 64m")
    p.add_argument("--memory-swap", help="memory+swap limit (-1: unlimited swap)")
    p.add_argument("--cpus", type=float)
    p.add_argument("--cpu-shares", type=int)
    p.add_argument("--pids-limit", type=int, help="most processes (default: 2048, BERTH_DEFAULT_PIDS_LIMIT)")
    p.add_argument("--disk", help="most the container may write, e.g. 1g (a size-limited mount for its writes)")
    p.add_argument("-v", "--volume", action="append", metavar="SRC:DST[:ro]",
                   help="bind mount /host/path:/dst or named volume name:/dst")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--restart", default="no", help="no, always, unless-stopped, on-failure[:N]")
    p.add_argument("-l", "--label", action="append", metavar="KEY=VALUE")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--entrypoint")
    network_flags(p)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _sig_proxy_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sig-proxy", type=sigproxy.parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="forward the signals this command receives to the container (default true)")


def _refs(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def register(sub) -> None:
    p = sub.add_parser("run", add_help=False, help="create and start a container")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits (with -d: by the engine)")
    _sig_proxy_flag(p)
    _create_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("create", add_help=False, help="create a container")
    _create_flags(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true")
    _sig_proxy_flag(p)
    _refs(p)
    p.set_defaults(func=cmd_start)

    for verb, fn, what in (("stop", cmd_stop, "stop containers (SIGTERM, SIGKILL after -t seconds)"),
                           ("restart", cmd_restart, "restart containers")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("-t", "--time", type=float, default=10)
        _refs(p)
        p.set_defaults(func=fn)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    _refs(p)
    p.set_defaults(func=cmd_kill)

    for verb, fn in (("pause", cmd_pause), ("unpause", cmd_unpause), ("wait", cmd_wait),
                     ("inspect", cmd_inspect)):
        p = sub.add_parser(verb, help=f"{verb} containers")
        _refs(p)
        p.set_defaults(func=fn)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true")
    _refs(p)
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--json", dest="ps_json", action="store_true")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="show a container's logs")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int)
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--since", help="unix seconds, RFC 3339 time, or 30s/5m/2h ago")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)
