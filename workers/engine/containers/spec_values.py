"""Value parsers of the container spec's fields (spec.py), one per kind of value. Each returns the normalised
value or raises InvalidConfig naming the field. Pure: no host is looked at here."""

from __future__ import annotations

import ipaddress
import math
import re
import signal
from collections.abc import Mapping
from typing import Any

from .config import (
    HOSTNAME_RE,
    MIN_DISK,
    MIN_MEMORY,
    clean_path,
    human_size,
    normalize_env,
    parse_args,
    parse_mount,
    parse_restart_policy,
    parse_size,
)
from .errors import InvalidConfig

INT64_MAX = 2**63 - 1  # OCI's memory limit is an int64, and so is the database's integer
PIDS_MAX = 4 * 1024 * 1024  # the kernel refuses a pids.max above PID_MAX_LIMIT (include/linux/threads.h)
CPUS_MAX = 4096.0  # no machine has more; the host's own count is checked where the container is made
USER_RE = re.compile(r"^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_.][a-zA-Z0-9_.-]*)?$")
NETWORK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
PORT_RE = re.compile(r"^(?:(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d{0,5}):)?(\d{1,5})(?:/(tcp|udp|sctp))?$")
SYSCTL_RE = re.compile(r"^[a-z0-9_]+(?:[./][a-z0-9_-]+)+$")
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack", "as")
DEVICE_MODES = re.compile(r"^[rwm]{1,3}$")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def text(value: Any, field: str, *, max_len: int = 4096) -> str | None:
    """A string (None and "" are unset); no NUL, bounded."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfig(field, f"{field} must be a string")
    value = value.strip()
    if "\x00" in value:
        raise InvalidConfig(field, f"{field} must not contain a NUL character")
    if len(value) > max_len:
        raise InvalidConfig(field, f"{field} is longer than {max_len} characters")
    return value or None


def boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise InvalidConfig(field, f"{field} must be true or false")


def integer(value: Any, field: str, what: str, *, low: int | None = None, high: int | None = None,
            sizes: bool = False) -> int | None:
    """A whole number (with `sizes`, also "64m", "1g"); bools, fractions and junk refused readably."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidConfig(field, f"{what} must be a number, not {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidConfig(field, f"{what} must be a whole number, not {value!r}")
        value = int(value)
    if isinstance(value, str):
        raw = value.strip()
        if len(raw) > 40:  # int() of a huge digit string is slow, and no limit is that long
            raise InvalidConfig(field, f"{what} {raw[:20]}… is out of range")
        if sizes:
            value = parse_size(raw, field)
        else:
            try:
                value = int(raw) if raw.lstrip("-").isascii() else int("x")
            except ValueError:
                raise InvalidConfig(field, f"{what} must be a whole number, not {raw[:30]!r}") from None
    if not isinstance(value, int):
        raise InvalidConfig(field, f"{what} must be a number, not {value!r}")
    if low is not None and value < low:
        shown = human_size(max(value, 0)) if sizes else str(value)
        least = human_size(low) if sizes else str(low)
        raise InvalidConfig(field, f"{what} {shown} is below the minimum of {least}")
    if high is not None and value > high:
        raise InvalidConfig(field, f"{what} is above the largest possible value {high}")
    return value


def memory(value: Any, field: str) -> int | None:
    return integer(value, field, "memory limit", low=MIN_MEMORY, high=INT64_MAX, sizes=True)


def memory_swap(value: Any, field: str) -> int | None:
    if value in (-1, "-1"):
        return -1
    return integer(value, field, "memory+swap limit", low=0, high=INT64_MAX, sizes=True)


def disk(value: Any, field: str) -> int | None:
    return integer(value, field, "disk limit", low=MIN_DISK, high=INT64_MAX, sizes=True)


def pids_limit(value: Any, field: str) -> int | None:
    return integer(value, field, "pids limit", low=1, high=PIDS_MAX)


def cpu_shares(value: Any, field: str) -> int | None:
    n = integer(value, field, "cpu shares")
    if n is not None and not 2 <= n <= 262144:
        raise InvalidConfig(field, f"cpu shares {n} is out of range 2..262144")
    return n


def cpus(value: Any, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidConfig(field, f"cpus must be a number, not {value!r}")
    try:
        n = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidConfig(field, f"cpus must be a number, not {str(value)[:30]!r}") from None
    if not math.isfinite(n) or not 0.01 <= n <= CPUS_MAX:
        raise InvalidConfig(field, f"cpus must be more than 0 (at least 0.01) and at most the host's CPUs, "
                                   f"not {n:g}")
    return n


def args(value: Any, field: str) -> list[str] | None:
    out = parse_args(value, field)
    if out is not None and any("\x00" in a for a in out):
        raise InvalidConfig(field, f"{field} must not contain a NUL character")
    return out


def env(value: Any, field: str) -> dict[str, str]:
    """{'K': 'V'} or ['K=V'] -> an ordered {'K': 'V'} (a later key replaces an earlier one)."""
    out: dict[str, str] = {}
    for item in normalize_env(value):
        key, _, val = item.partition("=")
        out[key] = val
    return out


def workdir(value: Any, field: str) -> str | None:
    path = text(value, field)
    return clean_path(path, field, "working directory") if path else None


def user(value: Any, field: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    spec = text(value, field, max_len=256)
    if spec and not USER_RE.match(spec):
        raise InvalidConfig(field, f"invalid user {spec!r}: use user[:group] (names or numbers)")
    return spec


def hostname(value: Any, field: str) -> str | None:
    name = text(value, field, max_len=256)
    if name and (not HOSTNAME_RE.match(name) or len(name) > 64):
        raise InvalidConfig(field, f"invalid hostname {name!r}")
    return name


def restart_policy(value: Any, field: str) -> str:
    policy = text(value, field, max_len=64) or "no"
    parse_restart_policy(policy)
    return policy


def mapping(value: Any, field: str, what: str = "names") -> dict[str, str]:
    """A mapping of non-empty names to strings (labels, sysctls)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k and "\x00" not in k for k in value):
        raise InvalidConfig(field, f"{field} must be a mapping of non-empty {what} to strings")
    out = {k: "" if v is None else str(v) for k, v in value.items()}
    if any("\x00" in v for v in out.values()):
        raise InvalidConfig(field, f"{field} values must not contain a NUL character")
    return out


def labels(value: Any, field: str) -> dict[str, str]:
    return mapping(value, field)


def strings(value: Any, field: str, what: str = "strings") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidConfig(field, f"{field} must be a list of {what}")
    return [v.strip() for v in value]


def mounts(value: Any, field: str) -> list[str]:
    items = strings(value, field, "'source:/destination[:ro]' strings")
    dests = [parse_mount(m)["destination"] for m in items]
    dup = sorted({d for d in dests if dests.count(d) > 1})
    if dup:
        raise InvalidConfig(field, f"duplicate mount destination {dup[0]}")
    return items


# --- declared for what comes next (the engine refuses them until it applies them) ----------------------

def ports(value: Any, field: str) -> list[str]:
    """'[ip:][host_port:]container_port[/tcp|udp|sctp]', as docker -p."""
    out = strings(value, field, "'[ip:][host_port:]port[/proto]' strings")
    for p in out:
        m = PORT_RE.match(p)
        if not m:
            raise InvalidConfig(field, f"invalid port {p!r}: use [ip:][host_port:]port[/tcp|udp|sctp]")
        if m.group(1):
            _ip(m.group(1).strip("[]"), field, f"port {p!r}")
        for n in (m.group(2), m.group(3)):
            if n and not 0 < int(n) <= 65535:
                raise InvalidConfig(field, f"invalid port {p!r}: ports are 1..65535")
    return out


def networks(value: Any, field: str) -> list[str]:
    out = strings(value, field, "network names")
    for name in out:
        if name.startswith("container:") and NETWORK_RE.match(name.removeprefix("container:")):
            continue
        if not NETWORK_RE.match(name):
            raise InvalidConfig(field, f"invalid network name {name!r}: use letters, digits, '_', '.', '-'")
    return out


def network_aliases(value: Any, field: str) -> list[str]:
    """More DNS names on user networks; container names are allowed as they are (docker's allow '_')."""
    out = strings(value, field, "names")
    for name in out:
        if not NETWORK_RE.match(name):
            raise InvalidConfig(field, f"invalid network alias {name!r}")
    return out


def _ip(value: str, field: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidConfig(field, f"{what}: {value!r} is not an IP address") from None


def dns(value: Any, field: str) -> list[str]:
    return [_ip(v, field, "DNS server") for v in strings(value, field, "IP addresses")]


def dns_search(value: Any, field: str) -> list[str]:
    out = strings(value, field, "domain names")
    for name in out:
        if not HOSTNAME_RE.match(name) or len(name) > 253:
            raise InvalidConfig(field, f"invalid search domain {name!r}")
    return out


def extra_hosts(value: Any, field: str) -> list[str]:
    """'name:ip' entries for /etc/hosts, as docker --add-host."""
    out = strings(value, field, "'name:ip' strings")
    for entry in out:
        name, sep, ip = entry.partition(":")
        if not sep or not HOSTNAME_RE.match(name):
            raise InvalidConfig(field, f"invalid extra host {entry!r}: use name:ip")
        _ip(ip.strip("[]"), field, f"extra host {entry!r}")
    return out


def capabilities(value: Any, field: str) -> list[str]:
    """Capability names, with or without CAP_ ("NET_ADMIN", "cap_sys_time"), or ALL."""
    from workers.engine.runtime.caps import CAPS

    out = []
    for name in strings(value, field, "capability names"):
        cap = name.upper().removeprefix("CAP_")
        if cap != "ALL" and cap not in CAPS:
            raise InvalidConfig(field, f"unknown capability {name!r}")
        out.append("ALL" if cap == "ALL" else f"CAP_{cap}")
    return out


def devices(value: Any, field: str) -> list[str]:
    """'/dev/host[:/dev/container[:rwm]]', as docker --device."""
    out = strings(value, field, "'/dev/host[:/dev/container[:rwm]]' strings")
    for entry in out:
        parts = entry.split(":")
        if len(parts) > 3 or not parts[0]:
            raise InvalidConfig(field, f"invalid device {entry!r}: use /dev/host[:/dev/container[:rwm]]")
        clean_path(parts[0], field, "device")
        if len(parts) > 1 and parts[1]:
            clean_path(parts[1], field, "device destination")
        if len(parts) == 3 and not DEVICE_MODES.match(parts[2]):
            raise InvalidConfig(field, f"invalid device mode {parts[2]!r} in {entry!r}: use r, w and m")
    return out


def sysctls(value: Any, field: str) -> dict[str, str]:
    out = mapping(value, field, "sysctl names")
    for key in out:
        if not SYSCTL_RE.match(key):
            raise InvalidConfig(field, f"invalid sysctl name {key!r}")
    return out


def ulimits(value: Any, field: str) -> dict[str, str]:
    """{"nofile": "1024:2048", "nproc": "512"}: soft[:hard] per resource, as docker --ulimit."""
    out = mapping(value, field, "resource names")
    for name, limit in out.items():
        if name not in ULIMITS:
            raise InvalidConfig(field, f"unknown ulimit {name!r}: use one of {', '.join(ULIMITS)}")
        soft, _, hard = limit.partition(":")
        if not all(v.isascii() and (v.isdigit() or v == "-1") and len(v) <= 20 for v in (soft, hard or soft)):
            raise InvalidConfig(field, f"invalid ulimit {name}={limit!r}: use soft[:hard] numbers")
        if hard and int(hard) != -1 and int(soft) > int(hard):
            raise InvalidConfig(field, f"ulimit {name}: the soft limit {soft} is above the hard limit {hard}")
    return out


def stop_signal(value: Any, field: str) -> str | None:
    name = text(value, field, max_len=32)
    if name is None:
        return None
    sig = name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"
    if sig not in signal.Signals.__members__:
        raise InvalidConfig(field, f"unknown signal {name!r}")
    return sig


def stop_timeout(value: Any, field: str) -> int | None:
    return integer(value, field, "stop timeout", low=0, high=3600)


HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period")


def healthcheck(value: Any, field: str) -> dict[str, Any] | None:
    """{"test": ["CMD", "curl", "-f", "http://localhost/"], "interval": 30, "timeout": 30, "retries": 3,
    "start_period": 0} (seconds), as a Dockerfile's HEALTHCHECK."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidConfig(field, f"{field} must be a mapping with test, interval, timeout, retries, start_period")
    unknown = sorted(set(value) - set(HEALTH_KEYS))
    if unknown:
        raise InvalidConfig(field, f"{field}: unknown key {unknown[0]!r}")
    test = strings(value.get("test"), field, "strings")
    if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL") or (test[0] != "NONE" and len(test) < 2):
        raise InvalidConfig(field, f"{field}: test must be [\"CMD\", args…], [\"CMD-SHELL\", command] or [\"NONE\"]")
    out: dict[str, Any] = {"test": test}
    for key in HEALTH_KEYS[1:]:
        n = integer(value.get(key), field, f"{field} {key}", low=0, high=86400)
        if n is not None:
            out[key] = n
    return out
