"""Registry authentication against real registries: htpasswd Basic auth, and the Bearer token flow with a token
issuer written here per Docker's token spec; Docker's config.json read, and written by login/logout."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.images.registry_server import LocalRegistry, TokenIssuer, registry_available
from workers.engine.images import registry
from workers.engine.images.errors import RegistryAuthError
from workers.engine.images.registry_auth import Credentials, parse_challenge, read_docker_config
from workers.engine.images.store import ImageStore

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]

ALICE = Credentials("alice", "s3cret-alice")


@pytest.fixture
def source(store: ImageStore, busybox_tar: Path) -> ImageStore:
    store.import_tarball(busybox_tar, "busybox:latest")
    return store


@pytest.fixture
def basic_reg(tmp_path: Path) -> Iterator[LocalRegistry]:
    r = LocalRegistry(tmp_path / "registry", auth="htpasswd", users={"alice": ALICE.password})
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def token_reg(tmp_path: Path) -> Iterator[tuple[LocalRegistry, TokenIssuer]]:
    issuer = TokenIssuer(tmp_path, users={"alice": ALICE.password, "bob": "bob-pw"},
                         grants={"alice": [("team-a/app", "pull,push"), ("public/app", "pull,push")], "bob": [("team-b/app", "pull,push")],
                                 "": [("public/app", "pull")]})
    r = LocalRegistry(tmp_path / "registry", auth="token", issuer=issuer)
    r.start()
    try:
        yield r, issuer
    finally:
        r.stop()
        issuer.close()


def test_challenge_parsing() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/nginx:pull"')
    assert scheme == "bearer" and params == {"realm": "https://auth.docker.io/token",
                                             "service": "registry.docker.io",
                                             "scope": "repository:library/nginx:pull"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_credentials_never_in_repr() -> None:
    assert ALICE.password not in repr(ALICE)


def test_basic_auth(source: ImageStore, tmp_path: Path, basic_reg: LocalRegistry) -> None:
    target = f"{basic_reg.domain}/a/bb:1"
    with pytest.raises(RegistryAuthError) as e:
        registry.push(source, "busybox:latest", target)
    assert e.value.field == "credentials"
    with pytest.raises(RegistryAuthError) as e:
        registry.push(source, "busybox:latest", target, credentials=Credentials("alice", "wrong"))
    assert "wrong" not in str(e.value)
    pushed = registry.push(source, "busybox:latest", target, credentials=ALICE)
    fresh = ImageStore(tmp_path / "fresh")
    with pytest.raises(RegistryAuthError):
        registry.pull(fresh, target)
    assert registry.pull(fresh, target, credentials=ALICE).digest == pushed.digest


def test_token_flow_grants_per_repository(source: ImageStore, tmp_path: Path,
                                          token_reg: tuple[LocalRegistry, TokenIssuer]) -> None:
    reg, issuer = token_reg
    pushed = registry.push(source, "busybox:latest", f"{reg.domain}/team-a/app:1", credentials=ALICE)
    assert ("alice", [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]) in issuer.issued
    fresh = ImageStore(tmp_path / "fresh")
    assert registry.pull(fresh, f"{reg.domain}/team-a/app:1", credentials=ALICE).digest == pushed.digest
    # bob's token carries no right on team-a's repository: refused, and the store is unchanged
    other = ImageStore(tmp_path / "bob")
    with pytest.raises(RegistryAuthError):
        registry.pull(other, f"{reg.domain}/team-a/app:1", credentials=Credentials("bob", "bob-pw"))
    with pytest.raises(RegistryAuthError):
        registry.push(source, "busybox:latest", f"{reg.domain}/team-a/app:2", credentials=Credentials("bob", "bob-pw"))
    with pytest.raises(RegistryAuthError):  # a wrong password is refused by the token service itself
        registry.pull(other, f"{reg.domain}/team-a/app:1", credentials=Credentials("alice", "nope"))
    assert other.list() == []
    # anonymous: pull where the issuer grants it, push nowhere
    registry.push(source, "busybox:latest", f"{reg.domain}/public/app:1", credentials=ALICE)
    assert registry.pull(other, f"{reg.domain}/public/app:1").digest == pushed.digest
    with pytest.raises(RegistryAuthError):
        registry.push(source, "busybox:latest", f"{reg.domain}/public/app:2")


def test_docker_config_login_logout(source: ImageStore, tmp_path: Path, basic_reg: LocalRegistry) -> None:
    auth_file = tmp_path / "docker" / "config.json"
    auth_file.parent.mkdir()
    auth_file.write_text(json.dumps({"auths": {"ghcr.io": {"auth": base64.b64encode(b"x:y").decode()}},
                                     "credsStore": "kept"}))
    with pytest.raises(RegistryAuthError):
        registry.login(basic_reg.domain, Credentials("alice", "wrong"), auth_file=auth_file)
    assert read_docker_config(basic_reg.domain, auth_file) is None
    registry.login(basic_reg.domain, ALICE, auth_file=auth_file)
    saved = json.loads(auth_file.read_text())
    assert saved["credsStore"] == "kept" and "ghcr.io" in saved["auths"]
    assert read_docker_config(basic_reg.domain, auth_file) == ALICE
    assert oct(auth_file.stat().st_mode & 0o777) == "0o600"
    registry.push(source, "busybox:latest", f"{basic_reg.domain}/a/bb:1", auth_file=str(auth_file))
    assert registry.logout(basic_reg.domain, auth_file=auth_file) is True
    assert read_docker_config(basic_reg.domain, auth_file) is None
    assert registry.logout(basic_reg.domain, auth_file=auth_file) is False
    with pytest.raises(RegistryAuthError):
        registry.push(source, "busybox:latest", f"{basic_reg.domain}/a/bb:2", auth_file=str(auth_file))


def test_docker_hub_keys_are_understood(tmp_path: Path) -> None:
    auth_file = tmp_path / "config.json"
    auth_file.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"hubuser:hubpw").decode()}}}))
    assert read_docker_config("docker.io", auth_file) == Credentials("hubuser", "hubpw")
    assert read_docker_config("ghcr.io", auth_file) is None
