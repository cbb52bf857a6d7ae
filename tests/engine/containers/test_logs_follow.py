"""Following a json-file log across rotations (workers/engine/containers/logs.py), on files made by hand so
that the rotations happen exactly between two reads of the follower: nothing still on disk is skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path

from workers.engine.containers.logs import read_logs


def write(path: Path, first: int, last: int) -> None:
    with open(path, "ab") as f:
        for i in range(first, last):
            f.write(json.dumps({"stream": "stdout", "time": f"2026-12-04T00:00:00.{i:09d}Z",
                                "log": f"line-{i}\n"}).encode() + b"\n")


def rotate(log: Path, keep: int) -> None:
    """As the monitor rotates: container.log.N shifts up one (the oldest beyond `keep` goes), the live one to .1."""
    for n in range(keep - 1, 0, -1):
        older = log.with_name(f"{log.name}.{n}")
        if older.exists():
            if n + 1 >= keep:
                older.unlink()
            else:
                older.rename(log.with_name(f"{log.name}.{n + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))


def test_a_follower_two_rotations_behind_reads_every_file_still_on_disk(tmp_path: Path):
    log = tmp_path / "container.log"
    write(log, 0, 10)
    alive = [True]
    follower = read_logs(log, follow=True, running=lambda: alive[0], poll=0.001)
    assert [next(follower)["log"] for _ in range(3)] == ["line-0\n", "line-1\n", "line-2\n"]
    # Two rotations while the follower is still in the first file: B is rotated away before it looks.
    write(log, 10, 12)
    rotate(log, keep=4)  # A -> .1
    write(log, 12, 20)  # B
    rotate(log, keep=4)  # A -> .2, B -> .1
    write(log, 20, 25)  # C, the live file
    alive[0] = False
    got = [r["log"] for r in follower]
    assert got == [f"line-{i}\n" for i in range(3, 25)]


def test_files_rotated_past_the_kept_count_are_lost_but_the_rest_is_read_in_order(tmp_path: Path):
    log = tmp_path / "container.log"
    write(log, 0, 5)
    alive = [True]
    follower = read_logs(log, follow=True, running=lambda: alive[0], poll=0.001)
    assert next(follower)["log"] == "line-0\n"
    for first in (5, 10, 15):  # three rotations with two files kept: the follower's file is deleted
        rotate(log, keep=2)
        write(log, first, first + 5)
    alive[0] = False
    got = [r["log"] for r in follower]
    # The rest of its open file (still readable), then what is still on disk, oldest first, no repeats.
    assert got == [f"line-{i}\n" for i in (*range(1, 5), *range(10, 20))]
    assert sorted(os.listdir(tmp_path)) == ["container.log", "container.log.1"]


def test_a_listing_in_the_middle_of_a_rotation_does_not_skip_the_file_on_its_way_to_1(tmp_path: Path, monkeypatch):
    """Fresh-clone run 23: the follower listed the files after the monitor had renamed .1 to .2 and before it renamed
    the live file to .1 ([.2, live]), then opened the new live file: the old one, now .1, was never read. Here the
    rotation's last two steps run right after that first listing, as the monitor did under load."""
    from workers.engine.containers import logs

    log = tmp_path / "container.log"
    write(log, 0, 10)
    rotate(log, keep=3)  # A -> .1
    write(log, 10, 20)  # B, live
    log.with_name("container.log.1").rename(log.with_name("container.log.2"))  # the rotation's first step
    listed = logs.log_files
    calls = []

    def listing_then_the_rest_of_the_rotation(path: Path) -> list[Path]:
        files = listed(path)
        if not calls:
            log.rename(log.with_name("container.log.1"))  # B -> .1
            write(log, 20, 25)  # C, the new live file
        calls.append([p.name for p in files])
        return files

    monkeypatch.setattr(logs, "log_files", listing_then_the_rest_of_the_rotation)
    got = [r["log"] for r in read_logs(log, follow=True, running=lambda: False, poll=0.001)]
    assert calls[0] == ["container.log.2", "container.log"]  # the listing did fall between the two renames
    assert got == [f"line-{i}\n" for i in range(25)]


def test_a_rotation_while_the_older_files_are_read_moves_names_not_the_files_being_read(tmp_path: Path, monkeypatch):
    """Fresh-clone run 23 again, the second window: the reader read .2 and then opened .1 *by name*; a rotation in
    between had put the live file at .1, so the old .1 was skipped and the live file read twice. Here the rotation
    runs while the first (oldest) file is being read."""
    from workers.engine.containers import logs

    log = tmp_path / "container.log"
    write(log, 0, 10)
    rotate(log, keep=3)  # A -> .1
    write(log, 10, 20)  # B
    rotate(log, keep=3)  # A -> .2, B -> .1
    write(log, 20, 30)  # C, live
    records = logs._records
    rotated = []

    def rotating_while_reading(f):
        if not rotated:
            rotated.append(True)
            rotate(log, keep=3)  # A deleted, B -> .2, C -> .1
            write(log, 30, 35)  # D, the new live file
        yield from records(f)

    monkeypatch.setattr(logs, "_records", rotating_while_reading)
    got = [r["log"] for r in read_logs(log, follow=True, running=lambda: False, poll=0.001)]
    assert rotated
    assert got == [f"line-{i}\n" for i in range(35)]


def test_rotations_between_opening_the_live_file_and_knowing_it_live_skip_nothing(tmp_path: Path, monkeypatch):
    """Fresh-clone run 28: the file opened as the live one had been rotated (twice) before the reader compared it
    with the live name, so it was read as an old file and the follower then opened the live file *by name*: the
    file rotated in between was skipped. Here the two rotations happen right at that comparison."""
    from workers.engine.containers import logs

    log = tmp_path / "container.log"
    write(log, 0, 10)  # A, live
    inode = logs._inode
    rotated = []

    def rotating_first(path: Path) -> int | None:
        if not rotated:
            rotated.append(True)
            rotate(log, keep=3)  # A -> .1
            write(log, 10, 20)  # B
            rotate(log, keep=3)  # A -> .2, B -> .1
            write(log, 20, 25)  # C, live
        return inode(path)

    monkeypatch.setattr(logs, "_inode", rotating_first)
    got = [r["log"] for r in read_logs(log, follow=True, running=lambda: False, poll=0.001)]
    assert rotated
    assert got == [f"line-{i}\n" for i in range(25)]
