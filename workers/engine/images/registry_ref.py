"""Registry references parsed as Docker parses them (github.com/distribution/reference's grammar).

`nginx` is `docker.io/library/nginx:latest`; `host:port/ns/name:tag`; `name@sha256:<hex>`. The first path
component is a registry host only when it has a `.` or a `:` or is `localhost` (and no capital letter), as
Docker decides. The PyPI parsers (docker-image-py) are small and barely used; this grammar is twenty lines and
tested against Docker's own examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_MAX = 255


@dataclass(frozen=True)
class RegistryRef:
    domain: str  # docker.io, ghcr.io, localhost:5000
    path: str  # library/nginx
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry's HTTP API answers (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def local_tag(self) -> str | None:
        """The store's tag: Docker's familiar form (`nginx:latest`, `localhost:5000/app:1`); None by digest."""
        if self.digest and not self.tag:
            return None
        return f"{self.familiar}:{self.tag or 'latest'}"

    @property
    def familiar(self) -> str:
        if self.domain == DOCKER_HUB:
            return self.path.removeprefix("library/")
        return self.name

    def with_reference(self, tag: str | None = None, digest: str | None = None) -> RegistryRef:
        return RegistryRef(self.domain, self.path, tag, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse(ref: str, field: str = "ref") -> RegistryRef:
    """Parse a reference the way `docker pull` does; InvalidReference names what is wrong."""
    def bad(message: str) -> InvalidReference:
        err = InvalidReference(f"{ref!r}: {message}")
        err.field = field
        return err

    rest = ref.strip()
    if not rest:
        raise bad("empty reference")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise bad("a digest is sha256: and 64 lowercase hex digits")
    first, slash, remainder = rest.partition("/")
    # Docker's rule: a first component with '.', ':', capitals, or `localhost` is a registry host.
    if slash and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise bad(f"invalid registry host {domain!r}")
    else:
        domain, path = DOCKER_HUB, rest
    tag = None
    colon = path.rfind(":")
    if colon != -1:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG_RE.match(tag):
            raise bad(f"invalid tag {tag!r}: letters, digits, _ . - (up to 128, not starting with . or -)")
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_PATH_COMPONENT_RE.match(c) for c in path.split("/")):
        raise bad("repository names are lowercase letters, digits and separators (. _ __ -) between '/'")
    if len(f"{domain}/{path}") > NAME_MAX:
        raise bad(f"repository name longer than {NAME_MAX} characters")
    if tag is None and digest is None:
        tag = "latest"
    return RegistryRef(domain, path, tag, digest)
