"""A host's change journal: one line per container whose state changed, so that supervision reads the
changes instead of every container's record every second.

Writers (the monitor when a container exits or finishes starting, the manager when it saves a record)
append the container id *after* writing the state itself, so a reader that sees the id also sees the
state. A reader keeps its offset and reads only new bytes: a pass over nothing that changed is one
fstat. When the file passes MAX_SIZE a writer renames it away; a reader that finds another inode (or
no file, or its offset past the end) is told to look at everything once (`read` returns None).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_SIZE = 1 << 20


def journal_path(root: str | os.PathLike[str]) -> Path:
    return Path(root) / "monitor" / "changes"


def note(root: str | os.PathLike[str], cid: str) -> None:
    """Say that container `cid` changed (one O_APPEND write: whole lines, even from several writers)."""
    path = journal_path(root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{cid}\n".encode())
        if os.fstat(fd).st_size > MAX_SIZE:
            try:
                os.replace(path, path.with_name("changes.old"))
            except FileNotFoundError:
                pass  # another writer rotated it first
    finally:
        os.close(fd)


class JournalReader:
    def __init__(self, root: str | os.PathLike[str]):
        self.path = journal_path(root)
        self.inode: int | None = None
        self.offset = 0
        self.started = False

    def read(self) -> set[str] | None:
        """The ids noted since the last read; None: look at every container (first read, or the journal
        was rotated or lost)."""
        first, self.started = not self.started, True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            lost = self.inode not in (None, 0)
            self.inode, self.offset = 0, 0  # 0: known absent; whatever file appears next is all new
            return None if first or lost else set()
        try:
            st = os.fstat(fd)
            if self.inode == 0 and not first:
                self.inode = st.st_ino
            if first or st.st_ino != self.inode or st.st_size < self.offset:
                self.inode, self.offset = st.st_ino, st.st_size
                return None
            if st.st_size == self.offset:
                return set()
            data = os.pread(fd, st.st_size - self.offset, self.offset)
        finally:
            os.close(fd)
        whole = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(whole)
        return {line.decode() for line in whole.split(b"\n") if line}

    def start(self) -> None:
        """Forget the past: the next read returns None (look at everything)."""
        self.started = False
