"""Reading a container's json-file logs: the rotated files oldest first, then the live one;
tail/since/stream filters, and follow (which survives a rotation by holding the old file open)."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from workers.engine.monitor.jsonlog import rfc3339_nano


def log_files(log_path: Path) -> list[Path]:
    """container.log.N ... container.log.1, container.log (those that exist), oldest first."""
    rotated = []
    for p in log_path.parent.glob(log_path.name + ".*"):
        suffix = p.name[len(log_path.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    out = [p for _, p in sorted(rotated, reverse=True)]
    if log_path.exists():
        out.append(log_path)
    return out


def _settled_files(log_path: Path, wait: float = 1.0) -> list[Path]:
    """log_files, listed again while the rotated names have a gap: a rotation renames .1 to .2 before the live
    file to .1, and a listing between the two would skip the file that is on its way to .1 (a follower then
    never reads it). After `wait` seconds of gaps (someone removed a file), what is there."""
    deadline = time.monotonic() + wait
    while True:
        files = log_files(log_path)
        rotated = [p for p in files if p != log_path]
        if [p.name for p in rotated] == [f"{log_path.name}.{i}" for i in range(len(rotated), 0, -1)] \
                or time.monotonic() >= deadline:
            return files
        time.sleep(0.001)


def parse_time(text: str) -> float:
    """RFC 3339 with up to nine fraction digits -> unix seconds (float)."""
    main, _, frac = text.rstrip("Z").partition(".")
    base = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=None)
    secs = (base - datetime(1970, 1, 1)).total_seconds()
    return secs + (float("0." + frac) if frac else 0.0)


def _records(f) -> Iterator[dict]:
    for raw in f:
        if not raw.endswith(b"\n"):
            break  # a line being written: the follower reads it once complete
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and "log" in rec:
            yield rec


def read_logs(log_path: Path, *, tail: int | None = None, since: float | None = None, follow: bool = False,
              stdout: bool = True, stderr: bool = True, running: Callable[[], bool] | None = None,
              poll: float = 0.05) -> Iterator[dict]:
    """Yield {"stream", "time", "log"} records; with `follow`, keep yielding new ones until
    `running()` is false and everything written has been read."""
    streams = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}

    # the monitor writes times with nine fraction digits, so they compare as text; a float holds a
    # unix time to ~0.2 us, so `since` is taken 1 us early (a record's own time selects it)
    since_text = None if since is None else rfc3339_nano(max(0, int(since * 1_000_000_000) - 1000))

    def wanted(rec: dict) -> bool:
        if rec.get("stream") not in streams:
            return False
        return since_text is None or str(rec.get("time", "")) >= since_text

    # every listed file is opened at once (inode-checked), then read through its descriptor: a rotation while
    # the older files are read moves names, not the files this reader holds
    opened = _opened_after(log_path, None)
    live = None
    queued: list = []  # files opened after a rotation, oldest first, read before anything newer
    # the last file read to its end, kept open so that its inode is not reused by a newer file: what comes next is
    # listed after it, never opened by name
    held = None
    if opened and os.fstat(opened[-1].fileno()).st_ino == _inode(log_path):
        live = opened.pop()
    if not follow and live is not None:
        opened.append(live)
        live = None
    try:
        selected: deque[dict] | list[dict] = deque(maxlen=tail) if tail is not None else []
        if tail == 0:
            selected = deque(maxlen=0)
        while opened:
            f = opened.pop(0)
            if held is not None:
                held.close()
            held = f
            for rec in _records(f):
                if wanted(rec):
                    selected.append(rec)
        if live is not None:
            for rec in _iter_complete(live):
                if wanted(rec):
                    selected.append(rec)
        yield from list(selected)
        if not follow:
            return
        while True:
            if live is None:
                # Not the live file by name: files may have been rotated in since the last one was read (the
                # live one of the first listing rotated before it was known as live, run 28), and each is read.
                ended = running is not None and not running()
                queued = _opened_after(log_path, None if held is None else os.fstat(held.fileno()).st_ino)
                if queued:
                    live = queued.pop(0)
                elif ended:
                    return
                else:
                    time.sleep(poll)
                    continue
            got = False
            for rec in _iter_complete(live):
                got = True
                if wanted(rec):
                    yield rec
            if got:
                continue
            # asked before the rotation check: a rotation just before the exit is then still seen
            ended = running is not None and not running()
            try:
                rotated = os.stat(log_path).st_ino != os.fstat(live.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if rotated:
                for rec in _iter_complete(live):  # the rest of the old file first
                    if wanted(rec):
                        yield rec
                if held is not None:
                    held.close()
                held = live
                if not queued:
                    # Every file written after this one, not just the live one: a follower that fell behind
                    # by two rotations would otherwise skip a whole file that is still on disk.
                    queued = _opened_after(log_path, os.fstat(held.fileno()).st_ino)
                live = queued.pop(0) if queued else None
                continue
            if ended:
                for rec in _iter_complete(live):
                    if wanted(rec):
                        yield rec
                return
            time.sleep(poll)
    finally:
        for f in [live, held, *queued, *opened]:
            if f is not None:
                f.close()


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _opened_after(log_path: Path, ino: int | None) -> list:
    """Open the log files written after the one with inode `ino`, oldest first (all of them when it is None or
    gone: rotated past the files kept). Each is opened and checked against the inode listed for its name, so a
    rotation between listing and opening is seen and the listing made again."""
    for _ in range(20):
        files = _settled_files(log_path)
        try:
            inodes = [os.stat(p).st_ino for p in files]
        except FileNotFoundError:
            continue  # renamed while listed
        start = inodes.index(ino) + 1 if ino in inodes else 0
        opened: list = []
        try:
            for path, want in zip(files[start:], inodes[start:], strict=True):
                opened.append(open(path, "rb"))  # noqa: SIM115 - handed to the follower
                if os.fstat(opened[-1].fileno()).st_ino != want:
                    raise FileNotFoundError(path)
        except FileNotFoundError:
            for f in opened:
                f.close()
            continue
        return opened
    return []  # rotating faster than it can be listed: the follower reopens the live file


def _iter_complete(f) -> Iterator[dict]:
    """Records of whole lines from the current position; a partial last line is left unread."""
    while True:
        pos = f.tell()
        raw = f.readline()
        if not raw:
            return
        if not raw.endswith(b"\n"):
            f.seek(pos)
            return
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and "log" in rec:
            yield rec
