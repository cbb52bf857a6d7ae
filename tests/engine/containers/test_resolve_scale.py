"""Resolving a reference costs the same with a thousand containers as with one: a whole id that is not
there is refused without listing every container (each create asks for its id first, to adopt a
container a redelivered job already made), while a prefix still finds its container."""

from __future__ import annotations

import json

import pytest

from workers.engine.containers import ContainerManager, NoSuchContainer


def test_an_unknown_whole_id_is_refused_without_a_scan_and_a_prefix_still_resolves(tmp_path, monkeypatch):
    mgr = ContainerManager(tmp_path)
    known = "ab" * 32
    (tmp_path / "containers" / known).mkdir(parents=True)
    (tmp_path / "containers" / known / "container.json").write_text(json.dumps({"id": known, "name": "web"}))
    mgr.names.build(mgr._all_names)  # as the first create on a state root does
    assert mgr._resolve("abab") == known  # a prefix: found by listing the containers
    monkeypatch.setattr(mgr, "_ids", lambda: pytest.fail("listed every container for a whole id"))
    with pytest.raises(NoSuchContainer):
        mgr._resolve("cd" * 32)
    assert mgr._resolve(known) == known
    assert mgr._resolve("web") == known
