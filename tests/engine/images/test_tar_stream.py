"""tar_stream.ForwardStream: a one-way stream read by tarfile's plain reader, not through its stream mode's buffers
(tarsafe.extract's reads, bench/move.py)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from workers.engine.images import tarsafe
from workers.engine.images.tar_stream import ForwardStream


class Trickle:
    """A stream that gives at most `step` bytes a read, as a socket may, and counts its reads."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos, self.reads = data, step, 0, 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        take = min(self.step, n if n >= 0 else self.step)
        chunk = self.data[self.pos:self.pos + take]
        self.pos += len(chunk)
        return chunk


def test_read_is_exact_whatever_the_reads_below_give_and_read_some_is_one_read() -> None:
    # mutant: fsutil.read_full (under ForwardStream.read) returns `first` whatever its length (a header read in
    # pieces looks truncated)
    data = bytes(range(256)) * 8
    stream = ForwardStream(Trickle(data, 7))
    assert stream.read(512) == data[:512] and stream.tell() == 512
    assert stream.read_some(512) == data[512:519] and stream.tell() == 519
    assert stream.read(10_000) == data[519:] and stream.tell() == len(data)
    assert stream.read(1) == b"" and stream.read_some(5) == b""


def test_seek_goes_forward_only() -> None:
    # mutant: ForwardStream.seek without its `pos < self.pos` check (a seek back would silently stay put and the
    # archive be read out of order)
    data = os.urandom(5000)
    stream = ForwardStream(Trickle(data, 1000))
    assert stream.seek(3333) == 3333 and stream.read(10) == data[3333:3343]
    assert stream.seek(3343) == 3343
    with pytest.raises(tarfile.ReadError, match="backwards"):
        stream.seek(100)
    with pytest.raises(tarfile.ReadError):
        stream.seek(10, 1)
    with pytest.raises(ValueError):
        stream.read()
    assert stream.seek(99_999) == 5000  # past the end: stops there, the next read finds nothing
    assert stream.read(1) == b""


def _archive() -> tuple[bytes, bytes]:
    """A pax archive with a long name, a file whose data is skipped (a whiteout with contents), a hard link and a
    symlink, and a large file; returns the archive and the large file's data."""
    big = os.urandom((1 << 20) + 77)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, body: bytes = b"", **kw) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            for key, value in kw.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(body))

        add("d", type=tarfile.DIRTYPE, mode=0o755)
        add("d/" + "n" * 150, big)
        add("d/.wh.gone", b"whiteout data that nobody reads " * 40)
        add("d/hard", type=tarfile.LNKTYPE, linkname="d/" + "n" * 150)
        add("d/soft", type=tarfile.SYMTYPE, linkname="hard")
        add("tail", b"t" * 513)
    return out.getvalue(), big


@pytest.mark.parametrize("step", [1 << 20, 4096, 511])
def test_an_archive_read_through_it_in_any_pieces_extracts_whole(tmp_path: Path, monkeypatch, step: int) -> None:
    # mutant: tarsafe.extract back on tarfile.open(mode="r|") (the guard below fails: _Stream read the data)
    def stream_mode(self, size=None):
        raise AssertionError("read through tarfile's stream mode")

    monkeypatch.setattr(tarfile._Stream, "read", stream_mode)
    archive, big = _archive()
    dest = tmp_path / f"dest{step}"
    dest.mkdir()
    stats = tarsafe.extract(Trickle(archive, step), str(dest))
    assert (dest / "d" / ("n" * 150)).read_bytes() == big
    assert os.path.samefile(dest / "d" / "hard", dest / "d" / ("n" * 150))
    assert os.readlink(dest / "d" / "soft") == "hard"
    assert stat.S_ISCHR(os.stat(dest / "d" / "gone", follow_symlinks=False).st_mode)  # a whiteout, its data skipped
    assert (dest / "tail").read_bytes() == b"t" * 513
    assert stats.file_bytes == len(big) + 513
