"""Every field of a container spec checked on its own, so a form shows all its bad fields at once (the spec
itself stops at the first). The rules are the spec's (workers/engine/containers/spec.py): nothing here
decides what is valid; services.create_container checks the whole again."""

from __future__ import annotations

from typing import Any


def field_errors(values: dict[str, Any]) -> dict[str, str]:
    """{spec field: message} for each given value the spec refuses when given alone."""
    from workers.engine.containers.errors import InvalidConfig
    from workers.engine.containers.spec import ContainerSpec

    out: dict[str, str] = {}
    for name, value in values.items():
        if value in (None, "", [], {}):
            continue
        try:
            ContainerSpec.from_json({name: value})
        except InvalidConfig as exc:
            out[exc.field or name] = str(exc)
    return out
