"""Image references: `name[:tag]`, `name@sha256:…`, `sha256:…` ids and short id prefixes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReference

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)"
NAME_RE = re.compile(rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
HEX_PREFIX_RE = re.compile(r"^(?:sha256:)?[0-9a-f]{4,64}$")
# Prefixes other tools add that mean nothing on a hub-less host.
_DROP_PREFIXES = ("docker.io/library/", "docker.io/", "localhost/")


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"


def normalize_name(name: str) -> str:
    for prefix in _DROP_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def parse(ref: str) -> Reference:
    """Parse `name[:tag]` or `name@sha256:…`; the tag defaults to `latest`."""
    ref = ref.strip()
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReference(f"invalid digest in reference: {digest!r}")
    name, tag = ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1:]
        if not TAG_RE.match(tag):
            raise InvalidReference(f"invalid tag {tag!r} in reference {ref!r}")
    name = normalize_name(name)
    if not NAME_RE.match(name):
        raise InvalidReference(f"invalid image name {name!r}: lowercase letters, digits and . _ - / only")
    return Reference(name, tag if digest is None else tag, digest)


def tag_of(ref: str) -> str:
    """The canonical `name:tag` string stored in index.json's ref.name annotation."""
    r = parse(ref)
    if r.digest:
        raise InvalidReference(f"a tag is needed here, not a digest: {ref!r}")
    return f"{r.name}:{r.tag or 'latest'}"
