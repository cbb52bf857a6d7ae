"""Integer inputs bounded to what the database and the kernel take, so an out-of-range number is a 400
naming its field (or an id that matches nothing) instead of an OverflowError/DataError (500) or a job the
host fails."""

from __future__ import annotations

from typing import Any

from django.db import connection

# The kernel refuses a pids.max above PID_MAX_LIMIT (4194304 on 64-bit, include/linux/threads.h).
PIDS_MAX = 4 * 1024 * 1024
# OCI's linux.resources.memory.limit is an int64, and so is the database's integer.
MEMORY_MAX = 2**63 - 1


def column_max(field: Any) -> int:
    """The largest value the database column of `field` (an integer field or a foreign key) holds."""
    target = getattr(field, "target_field", None) or field
    return connection.ops.integer_field_range(target.get_internal_type())[1]


def id_max(model: Any, name: str = "pk") -> int:
    """The largest id `model.<name>` (its primary key, or a foreign key's target) can hold."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    return column_max(field)


def ids_in_range(values: list[str], model: Any) -> list[int]:
    """The values that are ids `model` can have (dashboard ?ids= lists drop the others: they match nothing)."""
    return [n for v in values if (n := as_id(v, model))]


def as_id(value: Any, model: Any) -> int | None:
    """`value` (an int or a digit string, e.g. a URL's id) as an id `model` can have, else None (matches
    nothing). Long digit strings are measured before int(), which refuses more than 4300 digits."""
    text = str(value).strip()
    top = id_max(model)
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(top)) or not 0 < int(text) <= top:
        return None
    return int(text)
