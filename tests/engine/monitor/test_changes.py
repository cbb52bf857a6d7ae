"""The change journal: a reader gets each noted id once, and is told to look at everything when it
cannot know (first read, rotation, a lost file)."""

from __future__ import annotations

from workers.engine.monitor import changes


def test_reader_gets_new_ids_once_and_everything_after_a_rotation(tmp_path, monkeypatch):
    r = changes.JournalReader(tmp_path)
    assert r.read() is None  # first read: everything
    assert r.read() == set()
    changes.note(tmp_path, "a")
    changes.note(tmp_path, "b")
    changes.note(tmp_path, "a")
    assert r.read() == {"a", "b"}
    assert r.read() == set()
    monkeypatch.setattr(changes, "MAX_SIZE", 4)
    changes.note(tmp_path, "c")  # passes MAX_SIZE: rotated away
    assert r.read() is None
    changes.note(tmp_path, "d")
    assert r.read() == {"d"}  # the new file is read from its start
    changes.note(tmp_path, "e")
    monkeypatch.setattr(changes, "MAX_SIZE", 1 << 20)
    changes.journal_path(tmp_path).rename(tmp_path / "monitor" / "changes.old")
    changes.note(tmp_path, "f")  # rotated and a new file made between two reads
    assert r.read() is None
    assert r.read() == set()
    changes.journal_path(tmp_path).unlink()
    assert r.read() is None  # lost: everything
    r.start()
    assert r.read() is None


def test_a_line_being_written_waits_for_its_newline(tmp_path):
    r = changes.JournalReader(tmp_path)
    changes.note(tmp_path, "x")
    assert r.read() is None
    with open(changes.journal_path(tmp_path), "ab") as f:
        f.write(b"hal")
        f.flush()
        assert r.read() == set()
        f.write(b"f\n")
    assert r.read() == {"half"}
