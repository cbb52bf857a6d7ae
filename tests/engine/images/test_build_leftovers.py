"""What a build killed mid-way leaves (its RUN containers, its `berth-build-<id>:sN` tags) goes at the next sweep;
a running build's, whose lock its process holds, stays (workers/engine/images/build/leftovers.py). A real killed
worker mid-RUN: tests/e2e/test_worker_killed_per_kind.py."""

from __future__ import annotations

import io
import tarfile

from workers.engine.images import ImageStore
from workers.engine.images.build import leftovers


class Containers:
    """The manager's list/remove, over views {"id", "image"}."""

    def __init__(self, views: list[dict]) -> None:
        self.views = views
        self.removed: list[str] = []

    def list(self, all: bool = True) -> list[dict]:
        return [v for v in self.views if v["id"] not in self.removed]

    def remove(self, ref: str, force: bool = False) -> None:
        assert force
        self.removed.append(ref)


def test_a_dead_builds_containers_and_tags_go_a_live_ones_stay(tmp_path):
    store = ImageStore(tmp_path / "root")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("etc/hello")
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
    (tmp_path / "r.tar").write_bytes(buf.getvalue())
    store.import_tarball(tmp_path / "r.tar", "app:1")
    for tag in ("berth-build-dead:s0", "berth-build-dead:s1", "berth-build-live:s0"):
        store.tag("app:1", tag)
    leftovers.builds_dir(store).mkdir(parents=True, exist_ok=True)
    (leftovers.builds_dir(store) / "dead.lock").touch()  # its process died: nobody holds the lock
    mgr = Containers([{"id": "c-dead", "image": "berth-build-dead:s1"}, {"id": "c-live", "image": "berth-build-live:s0"},
                      {"id": "c-user", "image": "app:1"}])
    with leftovers.running(store, "live"):
        gone = leftovers.sweep(store, lambda: mgr)
        assert sorted(gone) == ["berth-build-dead:s0", "berth-build-dead:s1", "c-dead"]
        assert mgr.removed == ["c-dead"]
        assert sorted(t for i in store.list() for t in i.tags) == ["app:1", "berth-build-live:s0"]
        assert sorted(p.name for p in leftovers.builds_dir(store).iterdir()) == ["live.lock"]
        assert leftovers.sweep(store, lambda: mgr) == [], "a live build is left alone"
    assert list(leftovers.builds_dir(store).iterdir()) == [], "an ended build forgets its lock"
    asked = []
    assert leftovers.sweep(store, lambda: asked.append(1)) == [] and asked == [], "no manager made for nothing"
