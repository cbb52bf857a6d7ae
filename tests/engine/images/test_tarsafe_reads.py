"""How tarsafe.extract reads a regular file's data: from the archive's stream itself (tarfile's extractfile reader
copied every block once more), except a GNU sparse file, whose map only extractfile applies."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from workers.engine.images import tarsafe


def test_a_regular_file_is_read_from_the_stream_itself(tmp_path: Path, monkeypatch) -> None:
    # mutant: tarsafe._extract_one: `direct = member.sparse is None and ...` -> `direct = False`
    data = os.urandom(3 << 20)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in (("a" * 120 + "/big", data), ("small", b"x")):  # a long name: a PAX header before it
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    archive.seek(0)

    def refused(self, member):
        raise AssertionError(f"extractfile({member.name!r}) used for a regular file")

    monkeypatch.setattr(tarfile.TarFile, "extractfile", refused)
    dest = tmp_path / "dest"
    dest.mkdir()
    tarsafe.extract(archive, str(dest))
    assert (dest / ("a" * 120) / "big").read_bytes() == data and (dest / "small").read_bytes() == b"x"


def test_a_sparse_file_is_read_through_its_map(tmp_path: Path) -> None:
    # mutant: `direct = member.sparse is None and ...` -> `direct = tf.fileobj.tell() == member.offset_data` (the
    # sparse file's stored blocks read as if they were its whole data: the archive reads as corrupt)
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "holey", "wb") as f:
        f.truncate(3 << 20)
        f.seek(0, os.SEEK_END)
        f.write(b"end")
    (src / "after").write_bytes(b"after")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(src), "-cf", str(archive), "holey", "after"],
                   check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as f:
        tarsafe.extract(f, str(dest))
    got = (dest / "holey").read_bytes()
    assert len(got) == (3 << 20) + 3 and got.endswith(b"end") and not got[:-3].strip(b"\0")
    assert (dest / "after").read_bytes() == b"after"


@pytest.mark.parametrize("cut", [512 + 1000, 512 + (3 << 20) - 1])
def test_a_file_cut_short_is_refused(tmp_path: Path, cut: int) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 3 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(tarsafe.CorruptArchive):
        tarsafe.extract(io.BytesIO(archive.getvalue()[:cut]), str(dest))
