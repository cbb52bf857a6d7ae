"""A host's container names, one symbolic link each: `<state root>/names/<name>` -> the container's id.

A create checks its name (and a lookup by name finds its container) with one readlink, where it used to load
every container's record: 50 ms a create at 150 containers, growing with each one (issue 16). The links are
made and removed under the manager's locks; one left by a remove that was interrupted names a container
without a record, which counts as free. A state root made before the index has its links made once, from
the records, at the first create (the `.complete` marker says it was done)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

COMPLETE = ".complete"


class NameIndex:
    def __init__(self, root: Path, containers_dir: Path) -> None:
        self.dir = Path(root) / "names"
        self.containers_dir = containers_dir

    def owner(self, name: str) -> str | None:
        """The id of the container named `name`, or None."""
        if not name or name.startswith("."):
            return None
        try:
            cid = os.readlink(self.dir / name)
        except OSError:
            return None
        if "/" in cid or not (self.containers_dir / cid / "container.json").exists():
            return None  # a removed container's leftover link
        return cid

    def __contains__(self, name: object) -> bool:  # generate_name's "taken" set
        return isinstance(name, str) and self.owner(name) is not None

    def complete(self) -> bool:
        return (self.dir / COMPLETE).exists()

    def add(self, name: str, cid: str) -> None:
        self.dir.mkdir(exist_ok=True)
        tmp = self.dir / f".{name}.{cid[:16]}.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(cid, tmp)
        os.replace(tmp, self.dir / name)

    def discard(self, name: str, cid: str) -> None:
        """Remove `name`'s link if it still names `cid`."""
        try:
            if os.readlink(self.dir / name) == cid:
                os.unlink(self.dir / name)
        except OSError:
            pass

    def build(self, records: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Make the links of every (id, name) the records hold, once per state root."""
        if self.complete():
            return
        self.dir.mkdir(exist_ok=True)
        for cid, name in records():
            if name and self.owner(name) is None:
                self.add(name, cid)
        (self.dir / COMPLETE).touch()
