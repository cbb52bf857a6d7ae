"""Registry credentials: the `WWW-Authenticate` challenge (Basic, or Bearer with the token flow of Docker's
token spec), and Docker's `~/.docker/config.json` `auths` (read, and written by `berth login`/`logout`).

Credentials never appear in a repr, an exception message or a log line."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .fsutil import atomic_write
from .registry_ref import DOCKER_HUB

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_PARAM_RE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _key_matches(key: str, domain: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
    if domain == DOCKER_HUB:
        return key in _HUB_KEYS or host in _HUB_KEYS
    return host == domain


def read_docker_config(domain: str, path: str | os.PathLike[str] | None = None) -> Credentials | None:
    """The `auths` entry for `domain` in Docker's config.json (credential helpers are not run)."""
    path = Path(path) if path else docker_config_path()
    try:
        auths = json.loads(path.read_bytes()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key, entry in auths.items():
        if not _key_matches(key, domain) or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    return None


def write_docker_config(domain: str, credentials: Credentials | None,
                        path: str | os.PathLike[str] | None = None) -> bool:
    """Save (or with None remove) `domain`'s entry, keeping the rest of the file; True when it changed."""
    path = Path(path) if path else docker_config_path()
    try:
        config = json.loads(path.read_bytes())
    except FileNotFoundError:
        config = {}
    auths = config.setdefault("auths", {})
    stale = [k for k in auths if _key_matches(k, domain)]
    for key in stale:
        del auths[key]
    if credentials is not None:
        key = "https://index.docker.io/v1/" if domain == DOCKER_HUB else domain
        auths[key] = {"auth": base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()}
    elif not stale:
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(config, indent=1).encode() + b"\n", mode=0o600)
    return True
