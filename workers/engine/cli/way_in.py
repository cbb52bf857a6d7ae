"""The way into a running container: exec, attach, top, stats, cp (podman-like)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import posixpath
import select
import signal
import sys
import tarfile
import termios
import threading
import tty

from ..containers import ContainerManager
from ..images.tarwrite import TarWriter, walk_tree
from .containers import _engine_errors, _manager, _print_json

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, as docker and podman


@contextlib.contextmanager
def _raw(fd: int, enabled: bool):
    """The local terminal in raw mode while a remote terminal is attached."""
    if not enabled:
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # keep what was typed already
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size() -> tuple[int, int] | None:
    try:
        cols, rows = os.get_terminal_size(sys.stdout.fileno())
        return rows, cols
    except OSError:
        return None


def _pump_stdin(send, close, stop: threading.Event) -> None:
    """stdin to the session until EOF (then close its input) or the session ends."""
    fd = sys.stdin.fileno()
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            close()
            return
        if DETACH_KEYS in data:
            os.kill(os.getpid(), signal.SIGUSR1)
            return
        send(data)


@_engine_errors
def cmd_exec(args) -> int:
    m = _manager(args)
    size = _size() if args.tty else None
    s = m.exec_start(args.container, list(args.command), user=args.user, env=args.env, workdir=args.workdir,
                     tty=args.tty, interactive=args.interactive, rows=size[0] if size else None,
                     cols=size[1] if size else None)
    if args.detach:
        print(s["id"])
        return 0
    return _follow(m, args.container, s["id"], interactive=args.interactive, tty=args.tty)


def _follow(m: ContainerManager, ref: str, sid: str, *, interactive: bool, tty: bool) -> int:
    stop = threading.Event()
    local_tty = tty and sys.stdin.isatty()
    if tty:
        signal.signal(signal.SIGWINCH, lambda *_: (lambda s: s and m.exec_resize(ref, sid, *s))(_size()))

    def detach(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGUSR1, detach)
    if interactive:
        threading.Thread(target=_pump_stdin, daemon=True,
                         args=(lambda d: m.exec_input(ref, sid, d), lambda: m.exec_input(ref, sid, b"", eof=True),
                               stop)).start()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    code = 0
    try:
        with _raw(sys.stdin.fileno(), local_tty):
            for frame in m.exec_attach(ref, sid):
                if "data" in frame:
                    dest = err if frame["stream"] == "stderr" else out
                    dest.write(frame["data"])
                    dest.flush()
                elif "exit" in frame:
                    info = frame["exit"]
                    if info.get("error"):
                        print(f"Error: {info['error']}", file=sys.stderr)
                    code = info["exit_code"] if info.get("exit_code") is not None else 255
    except KeyboardInterrupt:
        print(f"\ndetached from session {sid}", file=sys.stderr)
    finally:
        stop.set()
    return code


@_engine_errors
def cmd_attach(args) -> int:
    """The container's output (and its terminal's input when it has one) until it ends or ctrl-p ctrl-q."""
    m = _manager(args)
    info = m.inspect(args.container)
    has_tty = bool(info.get("config", {}).get("tty"))
    stop = threading.Event()
    if has_tty and not args.no_stdin:
        threading.Thread(target=_pump_stdin, daemon=True,
                         args=(lambda d: m.monitor.input(info["id"], d.decode("utf-8", "replace")), lambda: None,
                               stop)).start()
        signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        with _raw(sys.stdin.fileno(), has_tty and sys.stdin.isatty() and not args.no_stdin):
            for frame in m.monitor.attach(info["id"]):
                if "exit" in frame:
                    code = frame["exit"].get("exit_code") or 0
                    break
                dest = sys.stderr if frame.get("stream") == "stderr" else sys.stdout
                dest.write(frame.get("data", ""))
                dest.flush()
    except KeyboardInterrupt:
        print("\ndetached", file=sys.stderr)
    finally:
        stop.set()
    return code


@_engine_errors
def cmd_top(args) -> int:
    m = _manager(args)
    top = m.top(args.container)
    if args.json:
        _print_json(top)
        return 0
    print(f"{'PID':>7} {'PPID':>7} {'USER':<10} {'TIME':>8} {'HOST PID':>9}  CMD")
    for p in top["processes"]:
        print(f"{p['pid']:>7} {p['ppid']:>7} {p['user']:<10} {p['time']:>8} {p['host_pid']:>9}  {p['cmd']}")
    return 0


def _human(n: float | None) -> str:
    if n is None:
        return "--"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)


def _stats_line(s: dict) -> str:
    cpu = "--" if s.get("cpu_percent") is None else f"{s['cpu_percent']:.2f}%"
    return (f"{s['id'][:12]:<13} {s['name'][:20]:<21} {cpu:>8} {_human(s['memory']) + ' / ' + _human(s['memory_limit']):>22}"
            f" {s.get('memory_percent') or 0:>6.2f}% {_human(s['net_rx']) + ' / ' + _human(s['net_tx']):>20}"
            f" {_human(s['block_read']) + ' / ' + _human(s['block_write']):>20} {s['pids'] or 0:>5}")


@_engine_errors
def cmd_stats(args) -> int:
    m = _manager(args)
    refs = args.containers or [c["id"] for c in m.list(all=False)]
    header = (f"{'ID':<13} {'NAME':<21} {'CPU %':>8} {'MEM USAGE / LIMIT':>22} {'MEM %':>7} {'NET I/O':>20}"
              f" {'BLOCK I/O':>20} {'PIDS':>5}")
    if args.no_stream:
        samples = [m.stats(ref) for ref in refs]
        if args.json:
            _print_json(samples)
        else:
            print(header)
            for s in samples:
                print(_stats_line(s))
        return 0
    import time

    from ..containers import stats as _stats

    before = {ref: m.stats_sample(ref) for ref in refs}
    while before:
        time.sleep(args.interval)
        lines = []
        for ref in list(before):
            try:
                now = m.stats_sample(ref)
            except Exception:  # noqa: BLE001 - stopped meanwhile: dropped from the table
                before.pop(ref)
                continue
            lines.append(_stats.with_rates(before[ref], now))
            before[ref] = now
        if args.json:
            print(__import__("json").dumps(lines), flush=True)
        else:
            sys.stdout.write("\x1b[2J\x1b[H" if sys.stdout.isatty() else "")
            print(header)
            for s in lines:
                print(_stats_line(s))
            sys.stdout.flush()
    return 0


def _split_ref(spec: str) -> tuple[str | None, str]:
    """CONTAINER:PATH or a local path."""
    head, sep, tail = spec.partition(":")
    if sep and head and "/" not in head:
        return head, tail
    return None, spec


@_engine_errors
def cmd_cp(args) -> int:
    m = _manager(args)
    src_c, src = _split_ref(args.src)
    dst_c, dst = _split_ref(args.dest)
    if (src_c is None) == (dst_c is None):
        print("Error: exactly one of SRC and DEST must be CONTAINER:PATH", file=sys.stderr)
        return 125
    if src_c is not None:  # out of the container
        if dst == "-":
            m.get_archive(src_c, src, sys.stdout.buffer)
            return 0
        buf = io.BytesIO()  # modest: `cp` of a big tree out should go to "-" and through tar
        m.get_archive(src_c, src, buf)
        buf.seek(0)
        target = dst
        rename = None
        if not os.path.isdir(dst):
            target, rename = os.path.dirname(os.path.abspath(dst)), os.path.basename(dst)
        with tarfile.open(fileobj=buf) as tf:
            members = tf.getmembers()
            top = members[0].name.split("/")[0] if members else ""
            for mem in members:
                if rename and top:
                    mem.name = rename + mem.name[len(top):]
            tf.extractall(target, members=members, filter="data")  # the host's own rules: no escape, no devices
        return 0
    # into the container
    if src == "-":
        m.put_archive(dst_c, dst, sys.stdin.buffer)
        return 0
    try:
        is_dir = m.stat_path(dst_c, dst)["type"] == "dir"
    except Exception:  # noqa: BLE001 - a new name in an existing directory
        is_dir = False
    dest_dir, name = (dst, os.path.basename(os.path.normpath(src))) if is_dir else \
        (posixpath.dirname(dst) or "/", posixpath.basename(dst))
    buf = io.BytesIO()
    writer = TarWriter(buf)
    src_path = os.path.abspath(src)
    from ..images.merged import Node

    st = os.lstat(src_path)
    pfd = os.open(os.path.dirname(src_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        writer.add(name, Node(pfd, os.path.basename(src_path), st))
        if os.path.isdir(src_path) and not os.path.islink(src_path):
            for rel, node in walk_tree(src_path):
                writer.add(f"{name}/{rel}", node)
        writer.close()
    finally:
        os.close(pfd)
    buf.seek(0)
    m.put_archive(dst_c, dest_dir, buf)
    return 0


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("-d", "--detach", action="store_true", help="print the session id and leave it running")
    p.add_argument("-u", "--user", help="user name or uid[:gid], from the container's /etc/passwd")
    p.add_argument("-w", "--workdir", help="working directory in the container")
    p.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE (repeatable)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("attach", help="attach to a running container's output (and terminal)")
    p.add_argument("--no-stdin", action="store_true", help="do not forward keystrokes")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("top", help="the processes of a running container")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_top)
    p = sub.add_parser("stats", help="CPU, memory, pids, network and block I/O of running containers")
    p.add_argument("--no-stream", action="store_true", help="one reading, then exit")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("cp", help="copy files between a container and the host (CONTAINER:PATH, '-' for tar)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p.set_defaults(func=cmd_cp)
