"""The pack's tar framing (workers/engine/containers/pack_tar.py): what tarfile reads back is what was written,
a stream that gives a byte at a time is read the same, and what a hostile sender may put in its place (a corrupt
header, an entry that is not a regular file, a cut) is refused with a PackError."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from workers.engine.containers import pack_tar
from workers.engine.containers.pack_tar import PackError, PackTarReader

MEMBERS = [("image.json", b'{"a": 1}'), ("blobs/sha256/" + "0" * 64, os.urandom(70_000)), ("empty", b""),
           ("upper.tar/000000", os.urandom(512 * 3))]


def framed(members=MEMBERS) -> bytes:
    out = io.BytesIO()
    for name, data in members:
        out.write(pack_tar.header(name, len(data)))
        out.write(data)
        out.write(pack_tar.padding(len(data)))
    out.write(pack_tar.END)
    return out.getvalue()


class Trickle(io.BytesIO):
    """A stream that gives at most `most` bytes a read, as a socket may."""

    def __init__(self, data: bytes, most: int) -> None:
        super().__init__(data)
        self.most = most

    def read(self, n: int = -1) -> bytes:
        return super().read(self.most if n is None or n < 0 else min(n, self.most))


def read_all(stream) -> list[tuple[str, bytes]]:
    pack, out = PackTarReader(stream), []
    while (member := pack.next()) is not None:
        data = b"".join(iter(lambda: pack.read(4096), b""))
        assert len(data) == member[1]
        out.append((member[0], data))
    return out


def test_tarfile_reads_what_is_written() -> None:
    with tarfile.open(fileobj=io.BytesIO(framed()), mode="r:") as tf:
        assert [(m.name, tf.extractfile(m).read()) for m in tf] == MEMBERS


@pytest.mark.parametrize("most", [1, 511, 513, 1 << 20])
def test_a_stream_in_any_slices_reads_the_same(most: int) -> None:
    # mutant: fsutil.read_full returns the first read as it is (a header given in pieces is cut)
    assert read_all(Trickle(framed(), most)) == MEMBERS


def test_what_tarfile_writes_is_read() -> None:
    from tests.engine.containers.test_move_pack import pack_from  # tarfile's stream writer

    assert read_all(io.BytesIO(pack_from(MEMBERS))) == MEMBERS


def test_a_member_skipped_unread_is_passed_over() -> None:
    pack = PackTarReader(io.BytesIO(framed()))
    names = []
    while (member := pack.next()) is not None:
        names.append(member[0])
        pack.read(10)  # a few bytes of it, or none: next() goes past the rest and its padding
    assert names == [name for name, _ in MEMBERS]


def test_a_corrupt_header_is_refused() -> None:
    # mutant: PackTarReader.next without its try (tarfile's HeaderError escapes, not a PackError)
    data = bytearray(framed())
    data[100] ^= 0xFF  # inside the first header: its checksum no longer matches
    with pytest.raises(PackError, match="corrupt member header"):
        read_all(io.BytesIO(bytes(data)))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.DIRTYPE, tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_an_entry_that_is_not_a_regular_file_is_refused(kind: bytes) -> None:
    # mutant: PackTarReader.next without its type check (a symlink's header read as a file of size 0)
    info = tarfile.TarInfo("blobs/sha256/" + "1" * 64)
    info.type, info.linkname = kind, "/etc/shadow"
    bad = info.tobuf(tarfile.GNU_FORMAT) if kind != tarfile.XHDTYPE else info.tobuf(tarfile.USTAR_FORMAT)
    with pytest.raises(PackError, match="not a file"):
        read_all(io.BytesIO(bad + pack_tar.END))


@pytest.mark.parametrize("cut", [300, 512 + 100, 512 + 8 + 10, -1024])
def test_a_cut_stream_is_refused(cut: int) -> None:
    # cut inside a header, inside a member's data, inside its padding, before the end-of-archive block
    with pytest.raises(PackError, match="ended early"):
        read_all(io.BytesIO(framed()[:cut]))


def test_a_name_that_needs_an_extension_header_is_not_written() -> None:
    with pytest.raises(ValueError, match="too long"):
        pack_tar.header("x" * 100, 1)


def test_what_is_held_until_sent_is_not_copied_unless_its_writer_may_reuse_it() -> None:
    data = os.urandom(100)
    assert pack_tar.kept(data) is data
    view = memoryview(data)[10:20]
    assert pack_tar.kept(view) is view
    reused = bytearray(data)
    held = pack_tar.kept(reused)
    reused[:] = bytes(100)
    assert held == data  # a copy: the writer's later change does not reach what waits to be sent
