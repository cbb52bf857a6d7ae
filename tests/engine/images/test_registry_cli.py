"""`berth login/push/pull/logout` as a user runs them: credentials from Docker's config.json, progress lines,
errors with podman's exit code and a one-line message naming the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.images.registry_server import LocalRegistry, registry_available
from tests.engine.images.test_cli import berth

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not registry_available(), reason="docker-registry (Debian package) missing")]


@pytest.fixture
def basic_reg(tmp_path: Path) -> Iterator[LocalRegistry]:
    r = LocalRegistry(tmp_path / "registry", auth="htpasswd", users={"carol": "carol-pw"})
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_login_push_pull_logout(state_root: Path, busybox_tar: Path, tmp_path: Path, basic_reg: LocalRegistry,
                                monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))  # the subprocesses inherit it
    with open(busybox_tar, "rb") as f:
        berth(state_root, "image", "import", "-", "bb:1", stdin=f)
    target = f"{basic_reg.domain}/c/bb:1"
    refused = berth(state_root, "push", "bb:1", target, check=False)
    assert refused.returncode == 125 and basic_reg.domain in refused.stderr and "login" in refused.stderr
    (tmp_path / "wrong").write_text("wrong\n")
    with open(tmp_path / "wrong") as f:
        bad = berth(state_root, "login", "-u", "carol", "--password-stdin", basic_reg.domain, stdin=f, check=False)
    assert bad.returncode == 125 and "wrong" not in bad.stderr + bad.stdout
    assert not (tmp_path / "dockercfg" / "config.json").exists()
    with open(tmp_path / "pw", "w") as f:
        f.write("carol-pw\n")
    with open(tmp_path / "pw") as f:
        assert "Login Succeeded" in berth(state_root, "login", "-u", "carol", "--password-stdin", basic_reg.domain,
                                          stdin=f).stdout
    assert basic_reg.domain in json.loads((tmp_path / "dockercfg" / "config.json").read_text())["auths"]
    pushed = berth(state_root, "push", "bb:1", target)
    assert "digest: sha256:" in pushed.stdout and "Pushed" in pushed.stderr
    other = tmp_path / "other"
    pulled = json.loads(berth(other, "--json", "pull", target).stdout)
    assert pulled["RepoTags"] == [target] and len(pulled["Fetched"]) == 1
    assert "Already exists" in berth(other, "pull", target).stderr
    assert "Removing login credentials" in berth(state_root, "logout", basic_reg.domain).stdout
    assert berth(other, "pull", f"{basic_reg.domain}/c/bb:2", check=False).returncode == 125
