"""Parsers of container-spec values (sizes, restart policies, env, mounts): every refusal is an InvalidConfig
naming its field. Pure: nothing here looks at a host (spec.py uses them on the web side too); what depends on
the host (a bind source's existence, its CPU count) is checked by the manager when it creates.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from .errors import InvalidConfig

MIN_MEMORY = 6 * 1024 * 1024  # as Docker: below this a container cannot even start its init
MIN_DISK = 16 * 1024 * 1024  # the smallest ext4 image (with its journal) storage.quota makes


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


# A container created with no pids limit gets this one (Podman's default): a fork bomb stops there
# instead of at the host's pid_max. The host's agent may tune it; the control plane passes its own.
DEFAULT_PIDS_LIMIT = _env_int("BERTH_DEFAULT_PIDS_LIMIT", 2048)
CPU_PERIOD = 100_000
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
ID_RE = re.compile(r"^[0-9a-f]{64}$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
ENV_KEY_RE = re.compile(r"^[^=\x00]+$")
VOLUME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_RETRIES = 2**31 - 1  # Docker's limit (an int), and it keeps the policy within the database column
RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:(\d+))?)$")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def human_size(n: int) -> str:
    """1 B, 512 KiB, 6 MiB, 1.5 GiB: how limits read in messages."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:.3g} {unit}" if v != int(v) else f"{int(v)} {unit}"
    return f"{n} B"


def parse_size(text: str | int, field: str = "memory") -> int:
    """'64m', '1g', '512k', '1048576' -> bytes (binary units, as docker -m)."""
    if isinstance(text, int):
        return text
    m = SIZE_RE.match(str(text))
    if not m:
        raise InvalidConfig(field, f"invalid size {text!r}: use a number with an optional unit b, k, m or g")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_restart_policy(policy: str | None) -> tuple[str, int | None]:
    """('on-failure', 2) for 'on-failure:2'; max retries None = unlimited."""
    p = (policy or "no").strip()
    m = RESTART_RE.match(p)
    if not m:
        raise InvalidConfig("restart_policy", f"invalid restart policy {policy!r}: use no, always, "
                                              "unless-stopped or on-failure[:N]")
    if p.startswith("on-failure"):
        retries = m.group(3)
        if retries is not None and (len(retries) > 10 or int(retries) > MAX_RETRIES):
            raise InvalidConfig("restart_policy", f"on-failure allows at most {MAX_RETRIES} retries")
        return "on-failure", int(retries) if retries is not None else None
    return p, None


def parse_args(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise InvalidConfig(field, f"invalid {field} {value!r}: {e}") from None
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return list(value)
    raise InvalidConfig(field, f"{field} must be a list of strings")


def normalize_env(env: dict | list | tuple | None) -> list[str]:
    """{'K': 'V'} or ['K=V'] -> ['K=V', ...] (a bare 'K' means K with an empty value)."""
    if env is None:
        return []
    items = [(str(k), "" if v is None else str(v)) for k, v in env.items()] if isinstance(env, dict) else None
    if items is None:
        if not isinstance(env, (list, tuple)):
            raise InvalidConfig("env", "env must be a mapping or a list of KEY=VALUE strings")
        items = []
        for e in env:
            if not isinstance(e, str):
                raise InvalidConfig("env", f"invalid env entry {e!r}: expected KEY=VALUE")
            k, _, v = e.partition("=")
            items.append((k, v))
    out = []
    for k, v in items:
        if not ENV_KEY_RE.match(k) or any(c.isspace() for c in k):
            raise InvalidConfig("env", f"invalid environment variable name {k!r}")
        if "\x00" in v:
            raise InvalidConfig("env", f"environment variable {k} contains a NUL byte")
        out.append(f"{k}={v}")
    return out


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Image env, then the user's: a user key replaces the image's value in place."""
    order: list[str] = []
    values: dict[str, str] = {}
    for e in [*base, *extra]:
        k, _, v = e.partition("=")
        if k not in values:
            order.append(k)
        values[k] = v
    return [f"{k}={values[k]}" for k in order]


def clean_path(path: str, field: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidConfig(field, f"{what} {path!r} must be an absolute path")
    if "\x00" in path or any(part == ".." for part in path.split("/")):
        raise InvalidConfig(field, f"{what} {path!r} must not contain '..'")
    return os.path.normpath(path)


def parse_mount(spec: str) -> dict:
    """'/host:/dst[:ro]' (bind) or 'name:/dst[:ro]' (named volume) -> a mount dict."""
    if not isinstance(spec, str):
        raise InvalidConfig("mounts", f"invalid mount {spec!r}: expected 'source:/destination[:ro]'")
    parts = spec.split(":")
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
        if mode not in ("ro", "rw"):
            raise InvalidConfig("mounts", f"invalid mount mode {mode!r} in {spec!r}: use ro or rw")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidConfig("mounts", f"invalid mount {spec!r}: expected 'source:/destination[:ro]'")
    src, dst = parts
    dst = clean_path(dst, "mounts", "mount destination")
    if dst == "/":
        raise InvalidConfig("mounts", f"invalid mount {spec!r}: cannot mount over /")
    if src.startswith("/"):
        src = clean_path(src, "mounts", "bind mount source")  # its existence is the host's to check
        return {"type": "bind", "source": src, "destination": dst, "read_only": mode == "ro"}
    if not VOLUME_RE.match(src) or len(src) > 128:
        raise InvalidConfig("mounts", f"invalid volume name {src!r}: use letters, digits, '_', '.', '-'")
    return {"type": "volume", "name": src, "destination": dst, "read_only": mode == "ro"}
