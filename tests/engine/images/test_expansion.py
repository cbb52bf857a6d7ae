"""A decompression bomb (1 MiB of gzip, 1 GiB of tar) stops an import or load at the cap, leaving nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bombs import docker_archive_with_layer, zeros_tar_gz
from workers.engine.images import TooLarge
from workers.engine.images.store import ImageStore

pytestmark = pytest.mark.root
CAP = 64 << 20


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = zeros_tar_gz(tmp_path_factory.mktemp("bomb") / "zeros.tar.gz")
    assert path.stat().st_size < 1_100_000  # about 1 MiB on the wire
    return path


def left_behind(store: ImageStore) -> list[str]:
    found = [str(p) for d in (store.tmp, store.layers) for p in d.iterdir()]
    return found + [p.name for p in store.blobs.iterdir()] + [t for i in store.list() for t in i.tags]


def test_an_import_stops_at_the_cap_and_keeps_nothing(store: ImageStore, bomb: Path):
    with pytest.raises(TooLarge) as err:
        store.import_tarball(bomb, "bomb:1", max_expanded=CAP)
    assert "expands to more than 64 MiB" in str(err.value)
    assert left_behind(store) == []


def test_a_load_stops_at_the_cap_in_the_archive_or_in_a_layer(store: ImageStore, bomb: Path, tmp_path: Path):
    with pytest.raises(TooLarge):
        store.load(bomb, max_expanded=CAP)  # the outer archive itself is the bomb
    assert left_behind(store) == []
    nested = docker_archive_with_layer(tmp_path / "nested.tar", bomb)
    with pytest.raises(TooLarge) as err:
        store.load(nested, max_expanded=CAP)  # a small archive whose layer is the bomb
    assert "expands to more than 64 MiB" in str(err.value)
    assert left_behind(store) == []


def test_under_the_cap_an_import_works(store: ImageStore, busybox_tar: Path):
    image = store.import_tarball(busybox_tar, "ok:1", max_expanded=busybox_tar.stat().st_size + 1024)
    assert image.tags == ["ok:1"]
