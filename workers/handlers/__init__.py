"""Job handler registry: job kind -> function(job, report) -> dict.

    from workers.handlers import handler

    @handler("image.pull")
    def pull(job, report):
        report(10, "fetching manifest")
        ...
        return {"digest": ...}

`report(progress: int, message: str = "")` updates the Job (0-100) and emits an event. Every module of
this package is imported on first lookup, so a new handler module needs no registration elsewhere.
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
_loaded = False
_lock = threading.Lock()


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of job `kind`."""

    def register(fn: Handler) -> Handler:
        if kind in HANDLERS and HANDLERS[kind] is not fn:
            raise ValueError(f"job kind {kind!r} already has a handler: {HANDLERS[kind].__module__}")
        HANDLERS[kind] = fn
        return fn

    return register


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


def get(kind: str) -> Handler | None:
    load_all()
    return HANDLERS.get(kind)


def known_kinds() -> list[str]:
    load_all()
    return sorted(HANDLERS)
