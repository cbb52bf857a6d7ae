"""The Debian builder's inputs (issue #13, `--include`): package names checked before debootstrap runs, the
image's name, and the cache's key and trust. The build itself runs in tests/e2e/test_e2e_mission.py."""

from __future__ import annotations

import os

import pytest

from workers.engine.images import ImageStore
from workers.engine.images.base import ensure_base_images, is_base_ref
from workers.engine.images.debian import BadPackageName, _own_private_dir, cache_key, debian_ref, packages


def test_packages_are_debian_names_sorted_once():
    assert packages("redis-server, python3,python3") == ["python3", "redis-server"]
    assert packages(["libstdc++6", "g++"]) == ["g++", "libstdc++6"]
    assert packages(None) == [] and packages("") == []
    for bad in ("Python3", "-o", "x", "a;rm -rf /", "../etc", "pkg=1.0", "a b"):
        with pytest.raises(BadPackageName) as refused:
            packages([bad])
        assert refused.value.field == "include"


def test_the_image_is_named_by_its_packages():
    assert debian_ref(None) == "debian:bookworm-slim"
    assert debian_ref("redis-server,python3") == debian_ref(["python3", "redis-server"]) \
        == "debian:bookworm_python3_redis-server"
    assert debian_ref(["g++"]).startswith("debian:bookworm-plus-")  # `+` cannot be in a tag
    assert debian_ref(["ab-cd", "ef"]) != debian_ref(["ab", "cd-ef"])
    assert is_base_ref(debian_ref(["python3"])) and is_base_ref("busybox:latest")
    assert not is_base_ref("debian:latest") and not is_base_ref("app:bookworm_python3")


def test_a_bad_name_is_refused_before_anything_is_built(tmp_path):
    store = ImageStore(tmp_path)
    with pytest.raises(BadPackageName):
        ensure_base_images(store, include=["redis-server", "--no-check-gpg"])
    assert [t for i in store.list() for t in i.tags] == ["busybox:latest"]


def test_the_cache_key_changes_with_every_input():
    key = cache_key(["python3"], "http://deb.debian.org/debian")
    assert key == cache_key(["python3"], "http://deb.debian.org/debian")
    assert len({key, cache_key(["python3", "redis-server"], "http://deb.debian.org/debian"),
                cache_key(["python3"], "http://mirror.example/debian"),
                cache_key(["python3"], "http://deb.debian.org/debian", suite="trixie")}) == 4


def test_a_cache_others_can_write_is_not_trusted(tmp_path):
    ok = tmp_path / "cache"
    assert _own_private_dir(str(ok)) == str(ok) and (ok.stat().st_mode & 0o777) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(Exception, match="cannot write"):
        _own_private_dir(str(shared))
