"""The source of a move undoes the stopped container's networking while it packs, and the pack's last part (without
which the target never starts the container) waits for that (workers/handlers/move.py _ship, _in_background)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from workers.handlers import move


class Relay:
    def __init__(self, done: threading.Event) -> None:
        self.done, self.closed_after_teardown, self.aborted = done, None, False

    def close(self) -> int:
        self.closed_after_teardown = self.done.is_set()
        return 0

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
def shipping(monkeypatch):
    monkeypatch.setattr(move.common, "container_manager",
                        lambda: SimpleNamespace(rootfs=lambda eid: {"manifest": "m", "upperdir": "/u"}))
    monkeypatch.setattr(move.common, "image_store", lambda: None)
    monkeypatch.setattr(move, "_source_volumes", lambda row: {})
    monkeypatch.setattr(move.move_pack, "write_pack", lambda *a, **k: {"sent": {}, "blobs_sent": [], "blobs_kept": []})
    return SimpleNamespace(engine_id="e", image_id=None, image=None, name="c")


def test_the_last_part_waits_for_the_teardown(shipping):
    done = threading.Event()

    def teardown() -> None:
        time.sleep(0.2)
        done.set()

    out = Relay(done)
    move._ship(lambda *a: None, shipping, SimpleNamespace(name="b"), out, [], False, before_end=move._in_background(teardown))
    assert out.closed_after_teardown is True


def test_a_failed_teardown_fails_the_pack_before_its_end(shipping):
    def teardown() -> None:
        raise OSError("netavark failed")

    out = Relay(threading.Event())
    with pytest.raises(OSError, match="netavark"):
        move._ship(lambda *a: None, shipping, SimpleNamespace(name="b"), out, [], False,
                   before_end=move._in_background(teardown))
    assert out.closed_after_teardown is None and out.aborted  # the end never sent: the target refuses the pack
