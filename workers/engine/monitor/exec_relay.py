"""Relays one exec session between the host's monitor and Redis, so a browser's console on any web server
reaches it: output frames go to the stream `berth:exec:<session>:out`, keystrokes/resizes/kills come from
`berth:exec:<session>:in`.

It is a process of its own (started detached by the worker's exec job): a worker killed meanwhile leaves the
relay and the session running; a relay killed leaves the session in the monitor, and a new relay picks up
from the output offset the stream already has. `on_exit(info)` is called once the session has ended.

    out entries: {"t": "stdout"|"stderr", "d": bytes, "o": offset} … then {"t": "exit", "d": json(info)}
    in entries:  {"k": "input", "d": bytes} | {"k": "eof"} | {"k": "resize", "rows", "cols"} | {"k": "kill"}
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable

from workers.engine.monitor.client import MonitorClient, MonitorError
from workers.engine.monitor.exec_client import ExecClient

OUT_MAXLEN = 20000
KEEP_AFTER_EXIT = 3600  # seconds the streams stay for a late reader


def out_key(sid: str) -> str:
    return f"berth:exec:{sid}:out"


def in_key(sid: str) -> str:
    return f"berth:exec:{sid}:in"


def _next_offset(r, sid: str) -> int:
    """Where a previous relay stopped: the end of the last output entry in the stream."""
    last = r.xrevrange(out_key(sid), count=1)
    if not last:
        return 0
    fields = last[0][1]
    if fields.get(b"t") == b"exit":
        return -1
    return int(fields.get(b"o", 0)) + len(fields.get(b"d", b""))


def relay(root: str, sid: str, redis_url: str, on_exit: Callable[[dict], None] | None = None) -> dict:
    """Run until the session ends; its final info."""
    import redis

    r = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=5)
    execs = ExecClient(MonitorClient(root))
    since = _next_offset(r, sid)
    if since < 0:
        return execs.status(sid)
    done = threading.Event()
    inputs = threading.Thread(target=_inputs, args=(redis_url, execs, sid, done), daemon=True)
    inputs.start()
    info: dict = {}
    try:
        for frame in execs.attach(sid, since=since):
            if "data" in frame:
                r.xadd(out_key(sid), {"t": frame["stream"], "d": frame["data"], "o": frame["offset"]},
                       maxlen=OUT_MAXLEN, approximate=True)
            elif "exit" in frame:
                info = frame["exit"]
        if not info:
            info = execs.status(sid)
    finally:
        done.set()
    r.xadd(out_key(sid), {"t": "exit", "d": json.dumps(info)}, maxlen=OUT_MAXLEN, approximate=True)
    for key in (out_key(sid), in_key(sid)):
        r.expire(key, KEEP_AFTER_EXIT)
    if on_exit is not None:
        on_exit(info)
    return info


def _inputs(redis_url: str, execs: ExecClient, sid: str, done: threading.Event) -> None:
    import redis

    r = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=5)
    last = "0-0"
    while not done.is_set():
        try:
            got = r.xread({in_key(sid): last}, count=100, block=500)
        except redis.RedisError:
            done.wait(1.0)
            continue
        for _key, entries in got or []:
            for entry_id, fields in entries:
                last = entry_id
                try:
                    _apply(execs, sid, fields)
                except MonitorError as exc:  # e.g. the program stopped reading: told, not fatal
                    print(f"exec relay {sid}: {exc}", file=sys.stderr)
        if got:
            r.xtrim(in_key(sid), minid=last)  # what was applied is not replayed by a later relay


def _apply(execs: ExecClient, sid: str, fields: dict) -> None:
    kind = fields.get(b"k", b"").decode()
    if kind == "input":
        execs.input(sid, fields.get(b"d", b""))
    elif kind == "eof":
        execs.input(sid, b"", eof=True)
    elif kind == "resize":
        execs.resize(sid, int(fields[b"rows"]), int(fields[b"cols"]))
    elif kind == "kill":
        execs.kill(sid, int(fields.get(b"sig", 9)))


def spawn_detached(argv: list[str], env: dict[str, str] | None = None, log_path: str | None = None) -> None:
    """Start `argv` as a daemon (double fork, own session): nobody's death but its own ends it."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) if log_path else null
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, 65536)
        os.execve(argv[0], argv, {**os.environ, **(env or {})})
    finally:
        os._exit(127)
