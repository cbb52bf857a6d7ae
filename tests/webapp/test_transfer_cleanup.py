"""A worker that starts removes `<state root>/exports/`, where older versions kept download files (they now travel
to the control plane and nothing writes there); the state root's other dirs stay."""

from __future__ import annotations

from types import SimpleNamespace

from workers.handlers.transfer_cleanup import remove_old_exports


def test_old_exports_go_at_worker_start_and_nothing_else(settings, tmp_path):
    settings.BERTH_STATE_ROOT = tmp_path
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "5.tar").write_bytes(b"old export")
    (tmp_path / "images").mkdir()
    assert remove_old_exports(SimpleNamespace(name="h")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert remove_old_exports(SimpleNamespace(name="h")) == 0
