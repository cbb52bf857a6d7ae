"""References parsed as `docker pull` parses them (cases from distribution/reference's own tests)."""

from __future__ import annotations

import pytest

from workers.engine.images.errors import InvalidReference
from workers.engine.images.registry_pull import parse_platform
from workers.engine.images.registry_ref import parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, domain, path, tag, digest, local", [
    ("nginx", "docker.io", "library/nginx", "latest", None, "nginx:latest"),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", None, "nginx:1.25"),
    ("bitnami/redis", "docker.io", "bitnami/redis", "latest", None, "bitnami/redis:latest"),
    ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None, "nginx:1"),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None, "nginx:latest"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/ns/app:v2", "localhost:5000", "ns/app", "v2", None, "localhost:5000/ns/app:v2"),
    ("ghcr.io/org/team/tool:x_1.0", "ghcr.io", "org/team/tool", "x_1.0", None, "ghcr.io/org/team/tool:x_1.0"),
    ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", "latest", None, "127.0.0.1:5000/a:latest"),
    (f"quay.io/a/b@{D}", "quay.io", "a/b", None, D, None),
    (f"quay.io/a/b:t@{D}", "quay.io", "a/b", "t", D, "quay.io/a/b:t"),
    ("foo/bar", "docker.io", "foo/bar", "latest", None, "foo/bar:latest"),  # no dot: not a host
    ("Foo/bar", "Foo", "bar", "latest", None, "Foo/bar:latest"),  # capitals: a host, as Docker decides
])
def test_parse(text, domain, path, tag, digest, local) -> None:
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest, ref.local_tag) == (domain, path, tag, digest, local)


def test_docker_hub_api_host() -> None:
    assert parse("nginx").api_host == "registry-1.docker.io"
    assert parse("ghcr.io/a/b").api_host == "ghcr.io"


@pytest.mark.parametrize("text", ["", "UPPER", "a//b", "a:", "a:-tag", "a@sha256:12", "host:port:1/a",
                                  "a/b:" + "t" * 129, "x" * 256, "-a", "a/-b", "a b"])
def test_invalid(text) -> None:
    with pytest.raises(InvalidReference) as e:
        parse(text, field="reference")
    assert e.value.field == "reference"


@pytest.mark.parametrize("text, want", [
    ("linux/amd64", ("linux", "amd64", None)), ("linux/arm64/v8", ("linux", "arm64", "v8")),
    ("arm64", ("linux", "arm64", None)),
])
def test_platform(text, want) -> None:
    assert parse_platform(text) == want


@pytest.mark.parametrize("text", ["linux/", "a/b/c/d", "/amd64"])
def test_bad_platform(text) -> None:
    with pytest.raises(Exception) as e:
        parse_platform(text)
    assert getattr(e.value, "field", None) == "platform"
