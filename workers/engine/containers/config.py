"""Checking and normalising what `create` gets: every refusal is an InvalidConfig naming its field.

The result is a plain JSON-able dict (stored as container.json "config"); bundle.py turns it and
the image config into config.json.
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


def _args(value: Any, field: str) -> list[str] | None:
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


def _clean_path(path: str, field: str, what: str) -> str:
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
    dst = _clean_path(dst, "mounts", "mount destination")
    if dst == "/":
        raise InvalidConfig("mounts", f"invalid mount {spec!r}: cannot mount over /")
    if src.startswith("/"):
        src = _clean_path(src, "mounts", "bind mount source")
        if not os.path.exists(src):
            raise InvalidConfig("mounts", f"bind mount source {src} does not exist on this host")
        return {"type": "bind", "source": src, "destination": dst, "read_only": mode == "ro"}
    if not VOLUME_RE.match(src) or len(src) > 128:
        raise InvalidConfig("mounts", f"invalid volume name {src!r}: use letters, digits, '_', '.', '-'")
    return {"type": "volume", "name": src, "destination": dst, "read_only": mode == "ro"}


def _number(value, kind, field: str, what: str):
    """int/float of a create argument; bools and junk refused readably."""
    if isinstance(value, bool):
        raise InvalidConfig(field, f"{what} must be a number, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidConfig(field, f"{what} must be a number, not {value!r}") from None


def normalize(*, id: str | None, name: str, command, entrypoint, env, workdir, user, hostname, memory,
              memory_swap, cpus, cpu_shares, pids_limit, restart_policy, labels, mounts, read_only,
              tty, disk=None, default_pids_limit: int | None = DEFAULT_PIDS_LIMIT) -> dict:
    """All create arguments checked; returns the stored config (without the image parts).

    `pids_limit` None gets `default_pids_limit`; `disk` (bytes, or "10g") limits the container's writes."""
    if id is not None and not ID_RE.match(str(id)):
        raise InvalidConfig("id", f"invalid container id {id!r}: expected 64 lowercase hex digits")
    if name and not NAME_RE.match(name):
        raise InvalidConfig("name", f"invalid container name {name!r}: use letters, digits, '_', '.', '-' "
                                    "(starting with a letter or digit)")
    cfg: dict[str, Any] = {
        "command": _args(command, "command"),
        "entrypoint": _args(entrypoint, "entrypoint"),
        "env": normalize_env(env),
    }
    if workdir:
        cfg["workdir"] = _clean_path(str(workdir), "workdir", "working directory")
    else:
        cfg["workdir"] = None
    if user:
        user = str(user)
        if not re.match(r"^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_.][a-zA-Z0-9_.-]*)?$", user):
            raise InvalidConfig("user", f"invalid user {user!r}: use user[:group] (names or numbers)")
    cfg["user"] = user or None
    if hostname:
        if not HOSTNAME_RE.match(hostname) or len(hostname) > 64:
            raise InvalidConfig("hostname", f"invalid hostname {hostname!r}")
    cfg["hostname"] = hostname or None
    if memory is not None:
        memory = parse_size(memory, "memory") if isinstance(memory, str) else _number(memory, int, "memory",
                                                                                         "memory limit")
        if memory < MIN_MEMORY:
            raise InvalidConfig("memory", f"memory limit {human_size(max(memory, 0))} is below the minimum of "
                                          f"{human_size(MIN_MEMORY)}")
    if memory_swap is not None:
        memory_swap = (parse_size(memory_swap, "memory_swap") if isinstance(memory_swap, str) and memory_swap != "-1"
                       else _number(memory_swap, int, "memory_swap", "memory+swap limit"))
        if memory is None:
            raise InvalidConfig("memory_swap", "memory_swap needs a memory limit as well")
        if memory_swap != -1 and memory_swap < memory:
            raise InvalidConfig("memory_swap", f"memory+swap limit {human_size(max(memory_swap, 0))} is below "
                                               f"the memory limit {human_size(memory)}")
    cfg["memory"], cfg["memory_swap"] = memory, memory_swap
    if cpus is not None:
        cpus = _number(cpus, float, "cpus", "cpus")
        if cpus != cpus:  # NaN
            raise InvalidConfig("cpus", "cpus must be a number")
        ncpu = os.cpu_count() or 1
        if not 0.01 <= cpus <= ncpu:
            raise InvalidConfig("cpus", f"cpus {cpus:g} is out of range: use a value from 0.01 to {ncpu} "
                                        "(the CPUs of this host)")
    cfg["cpus"] = cpus
    if cpu_shares is not None:
        cpu_shares = _number(cpu_shares, int, "cpu_shares", "cpu shares")
        if not 2 <= cpu_shares <= 262144:
            raise InvalidConfig("cpu_shares", f"cpu shares {cpu_shares} is out of range 2..262144")
    cfg["cpu_shares"] = cpu_shares
    if pids_limit is not None:
        pids_limit = _number(pids_limit, int, "pids_limit", "pids limit")
        if pids_limit < 1:
            raise InvalidConfig("pids_limit", f"pids limit {pids_limit} must be at least 1")
    cfg["pids_limit"] = pids_limit if pids_limit is not None else default_pids_limit
    if disk is not None:
        disk = parse_size(disk, "disk") if isinstance(disk, str) else _number(disk, int, "disk", "disk limit")
        if disk < MIN_DISK:
            raise InvalidConfig("disk", f"disk limit {human_size(max(disk, 0))} is below the minimum of "
                                        f"{human_size(MIN_DISK)}")
    cfg["disk"] = disk
    parse_restart_policy(restart_policy)
    cfg["restart_policy"] = (restart_policy or "no").strip()
    if labels is None:
        labels = {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and k for k in labels):
        raise InvalidConfig("labels", "labels must be a mapping of non-empty names to strings")
    cfg["labels"] = {k: "" if v is None else str(v) for k, v in labels.items()}
    parsed = [parse_mount(m) for m in mounts or []]
    dests = [m["destination"] for m in parsed]
    dup = {d for d in dests if dests.count(d) > 1}
    if dup:
        raise InvalidConfig("mounts", f"duplicate mount destination {sorted(dup)[0]}")
    cfg["mounts"] = list(mounts or [])
    cfg["read_only"] = bool(read_only)
    cfg["tty"] = bool(tty)
    return cfg
