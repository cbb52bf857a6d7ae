"""The export/commit writer against a name swapped between the walk's look and its own (fresh-clone run 15: a
container swapping `d` between a directory and a symlink made its own commit fail, the writer having put out
`d` as a link and then `d/secret` below it, which the store's extractor refuses). Reproduced without a race: the
walk's view (a directory) is handed to the writer after the name became a link."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from workers.engine.images.merged import Node
from workers.engine.images.tarsafe import extract
from workers.engine.images.tarwrite import TarWriter


def _entries(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: "d" if m.isdir() else "l" if m.issym() else "f" for m in tar.getmembers()}


def test_nothing_goes_out_below_a_name_written_as_a_link(tmp_path: Path):
    # mutant caught: TarWriter.add without its parent check writes race/d/secret after race/d as a link
    tree = tmp_path / "tree"
    (tree / "race" / "d").mkdir(parents=True)
    (tree / "race" / "d" / "secret").write_bytes(b"inside")
    (tree / "race" / "elsewhere").mkdir()
    top = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    race = os.open(tree / "race", os.O_RDONLY | os.O_DIRECTORY)
    try:
        walked = os.stat("d", dir_fd=race, follow_symlinks=False)  # the walk saw a directory...
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=race)  # ...and opened it to descend
        inner = os.stat("secret", dir_fd=sub, follow_symlinks=False)
        (tree / "race" / "d").rename(tree / "race" / "gone")
        (tree / "race" / "d").symlink_to("elsewhere")  # then the tenant swapped it for a link
        buf = io.BytesIO()
        writer = TarWriter(buf)
        assert writer.add("race", Node(top, "race", os.stat(tree / "race"))) == tarfile.DIRTYPE
        assert writer.add("race/d", Node(race, "d", walked)) == tarfile.SYMTYPE  # what is there now
        assert writer.add("race/d/secret", Node(sub, "secret", inner)) is None
        writer.add_empty_file("race/d/.wh.x")  # nor a whiteout below it
        writer.close()
        os.close(sub)
    finally:
        os.close(race)
        os.close(top)
    assert _entries(buf.getvalue()) == {"race": "d", "race/d": "l"}
    dest = tmp_path / "out"
    dest.mkdir()
    extract(io.BytesIO(buf.getvalue()), str(dest))  # the store's own extractor takes what the writer made
    assert os.readlink(dest / "race" / "d") == "elsewhere"
