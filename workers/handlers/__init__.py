"""Job handler registry: job kind -> function(job, report) -> dict.

    from workers.handlers import handler

    @handler("image.pull")
    def pull(job, report):
        report(10, "fetching manifest")
        ...
        return {"digest": ...}

`report(progress: int, message: str = "")` updates the Job (0-100) and emits an event. Every module of
this package is imported when the worker starts (and on first lookup elsewhere), so a new handler
module needs no registration elsewhere.

Work a host must do when its worker starts (e.g. reconcile containers that exited while it was down)
registers with `@on_worker_start` and receives the freshly registered Host row:

    @on_worker_start
    def reconcile(host): ...

A job whose worker died on every attempt is failed by workers/agent.py (`requeue_or_fail`) without its
handler's own cleanup; a kind that leaves work half done registers `@on_given_up("kind")`, called with the
failed Job once that is committed, in the main process of its host's worker (start-up or heartbeat):

    @on_given_up("container.move")
    def settle(job): ...   # quick and engine-free there: queue a job for the engine work
Modules named `testing*` are only loaded with BERTH_TEST_HANDLERS=1 (test-only job kinds).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from collections.abc import Callable
from typing import Any

Report = Callable[..., None]
Handler = Callable[[Any, Report], "dict[str, Any] | None"]

HANDLERS: dict[str, Handler] = {}
STARTUP_HOOKS: list[Callable[[Any], None]] = []
GIVEN_UP_HOOKS: dict[str, Callable[[Any], None]] = {}
_loaded = False
_lock = threading.Lock()
# Engine modules the handlers import on their first run: imported by preload() in the worker's main process
# before its pool forks, so no job process pays for them (a fresh process's first container job imported 216
# modules, pyroute2's among them).
PRELOAD = ("workers.engine.containers.manager", "workers.engine.net.manager", "workers.engine.containers.move_pack",
           "workers.engine.containers.volumes", "workers.engine.images.unpack", "workers.engine.monitor.client",
           "workers.engine.storage.quota", "channels_redis.core", "django.db.models.sql.compiler",
           "pyroute2")  # a start marks its veth's link group through it (net/antispoof.py): 0.1 s of import


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of job `kind`."""

    def register(fn: Handler) -> Handler:
        if kind in HANDLERS and HANDLERS[kind] is not fn:
            raise ValueError(f"job kind {kind!r} already has a handler: {HANDLERS[kind].__module__}")
        HANDLERS[kind] = fn
        return fn

    return register


def on_worker_start(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Run `fn(host)` in the worker's main process once it has registered its host."""
    if fn not in STARTUP_HOOKS:
        STARTUP_HOOKS.append(fn)
    return fn


def on_given_up(*kinds: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Run `fn(job)` when a job of one of `kinds` is failed for good because its worker died on every attempt."""

    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        for kind in kinds:
            GIVEN_UP_HOOKS[kind] = fn
        return fn

    return register


def given_up_hook(kind: str) -> Callable[[Any], None] | None:
    load_all()
    return GIVEN_UP_HOOKS.get(kind)


def load_all() -> None:
    """Import every handler module once."""
    global _loaded
    with _lock:
        if _loaded:
            return
        with_tests = os.environ.get("BERTH_TEST_HANDLERS") == "1"
        for mod in pkgutil.iter_modules(__path__):
            if mod.name.startswith("testing") and not with_tests:
                continue
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True


def preload() -> None:
    """Every handler module and PRELOAD, for a process that forks job processes afterwards."""
    load_all()
    for name in PRELOAD:
        importlib.import_module(name)


def get(kind: str) -> Handler | None:
    load_all()
    return HANDLERS.get(kind)


def known_kinds() -> list[str]:
    load_all()
    return sorted(HANDLERS)
