"""Loading and checking an OCI bundle's config.json."""

from __future__ import annotations

import os

from . import jsonfast
from .errors import InvalidBundle

_ID_PUNCT = frozenset("_+-.")  # and letters and digits: runc's ^[\w+-.]+$ (no `re` import: see jsonfast)
NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def check_id(container_id: str) -> None:
    if not container_id or not all(c.isalnum() or c in _ID_PUNCT for c in container_id) or container_id in (".", ".."):
        raise InvalidBundle(f"invalid container id format: {container_id!r}")


def load(bundle: str) -> dict:
    """Read and validate <bundle>/config.json; InvalidBundle with one line on any problem."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidBundle("JSON specification file config.json not found") from None
    except OSError as e:
        raise InvalidBundle(f"cannot read {path}: {e.strerror}") from None
    try:
        cfg = jsonfast.loads(raw)
    except ValueError as e:
        raise InvalidBundle(f"invalid config.json: {e}") from None
    validate(cfg, bundle)
    return cfg


def validate(cfg: object, bundle: str) -> None:
    if not isinstance(cfg, dict):
        raise InvalidBundle("invalid config.json: not a JSON object")
    ver = cfg.get("ociVersion")
    if not isinstance(ver, str) or not ver.startswith("1."):
        raise InvalidBundle(f"unsupported ociVersion {ver!r}: want 1.x")
    root = cfg.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise InvalidBundle("config.json: root.path is required")
    rootfs = root_path(cfg, bundle)
    if not os.path.isdir(rootfs):
        raise InvalidBundle(f"rootfs ({rootfs}) does not exist")
    proc = cfg.get("process")
    if not isinstance(proc, dict):
        raise InvalidBundle("config.json: process is required")
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidBundle("config.json: process.args must be a non-empty list of strings")
    cwd = proc.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidBundle("config.json: process.cwd must be an absolute path")
    linux = cfg.get("linux") or {}
    if not isinstance(linux, dict):
        raise InvalidBundle("config.json: linux must be an object")
    seen = set()
    for ns in linux.get("namespaces") or []:
        t = ns.get("type") if isinstance(ns, dict) else None
        if t not in NS_TYPES:
            raise InvalidBundle(f"config.json: unknown namespace type {t!r}")
        if t in seen:
            raise InvalidBundle(f"config.json: duplicate namespace {t}")
        seen.add(t)
    for m in cfg.get("mounts") or []:
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
            raise InvalidBundle("config.json: every mount needs a destination")
        if not m["destination"].startswith("/"):
            raise InvalidBundle(f"config.json: mount destination {m['destination']!r} is not absolute")
    for rl in proc.get("rlimits") or []:
        if not str(rl.get("type", "")).startswith("RLIMIT_"):
            raise InvalidBundle(f"config.json: bad rlimit {rl.get('type')!r}")
    from . import caps

    try:
        caps.validate(proc.get("capabilities"))
    except ValueError as e:
        raise InvalidBundle(f"config.json: {e}") from None
    if "user" in seen and not (linux.get("uidMappings") and linux.get("gidMappings")):
        if not any(ns.get("path") for ns in linux.get("namespaces") or [] if ns.get("type") == "user"):
            raise InvalidBundle("config.json: a user namespace needs uidMappings and gidMappings")


def root_path(cfg: dict, bundle: str) -> str:
    p = cfg["root"]["path"]
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(bundle, p))


def namespaces(cfg: dict) -> dict[str, str | None]:
    """OCI namespace type -> path to join (None: make a new one)."""
    return {ns["type"]: ns.get("path") or None for ns in (cfg.get("linux") or {}).get("namespaces") or []}
