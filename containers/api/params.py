"""Query parameters the schema types as boolean.

The schema says `boolean`; on the wire that is true/false (any case) or 1/0, as OpenAPI clients and
schemathesis send them. Anything else, the empty string included, is a 400 naming the parameter: a
lenient reading (`?follow=` as false, `?force=yes` as true) would accept what the schema calls invalid.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import services

_MAX_ID = 2**63 - 1  # the database's integer keys; a longer number names nothing (and overflows SQLite)
_WIRE = {"true": True, "1": True, "false": False, "0": False}


def query_bool(params: Mapping[str, str], name: str, default: bool = False) -> bool:
    """The boolean `name` of `params` (request.query_params), `default` when it is absent."""
    if name not in params:
        return default
    value = _WIRE.get(params[name].lower())
    if value is None:
        raise services.ServiceError("invalid", f"{name} must be true or false (or 1 or 0), not {params[name]!r}",
                                    field=name)
    return value


def is_id(value: object) -> bool:
    """True if `value` can name a row by its id: ASCII digits within the key range. str.isdigit() alone
    lets '³' or '١' through, which int() then refuses (a 500 where a 404 is due)."""
    text = str(value)
    return text.isascii() and text.isdigit() and int(text) <= _MAX_ID
