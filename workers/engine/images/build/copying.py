"""COPY/ADD: pick the sources (globs; `.dockerignore` for the build context), hash what they hold for the cache
key, and write them as one layer tar under their destination.

Sources are read through directory descriptors with O_NOFOLLOW (tarwrite/merged): a symlink in the context or
in a stage is copied as the link it is, never followed out; a source path may not climb out with `..`."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..compression import decompressed
from ..errors import ImageError
from ..merged import Node, View
from ..tarwrite import TarWriter, walk_merged, walk_tree
from .errors import BuildError

Walker = Callable[[], Iterator[tuple[str, Node]]]


def _pattern_re(pattern: str) -> re.Pattern:
    """A .dockerignore / COPY glob as a regex over slash-separated relative paths (`**` spans dirs)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"  # zero or more directories
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out += re.escape(c)
            else:
                out += "[" + pattern[i + 1:j].replace("\\", "\\\\") + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


class DockerIgnore:
    """Docker's rules: patterns cleaned and matched against the path or any of its parents; `!` re-includes;
    the last matching line wins."""

    def __init__(self, text: str = "") -> None:
        self.rules: list[tuple[bool, re.Pattern]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pat = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
            if pat in (".", ""):
                continue
            self.rules.append((negate, _pattern_re(pat)))

    def ignored(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        out = False
        for negate, rx in self.rules:
            if negate:
                if rx.match(rel):
                    out = False
            elif any(rx.match(p) for p in prefixes):
                out = True
        return out


def context_walker(context: str, ignore: DockerIgnore) -> Walker:
    def walk() -> Iterator[tuple[str, Node]]:
        for rel, node in walk_tree(context):
            if not ignore.ignored(rel):
                yield rel, node
    return walk


def stage_walker(layer_dirs: list[str]) -> Walker:
    def walk() -> Iterator[tuple[str, Node]]:
        yield from walk_merged(layer_dirs)
    return walk


def _clean_source(src: str, where: str) -> str:
    rel = posixpath.normpath(src.lstrip("/") or ".")
    if rel == ".." or rel.startswith("../"):
        raise BuildError(f"{where}: source {src!r} is outside the build context", field="dockerfile")
    return "" if rel == "." else rel


@dataclass
class Plan:
    """Which source entries go where: `mapping[src_rel] = dest_rel` (paths relative to /)."""

    mapping: dict[str, str]
    parents: list[str]  # dest dirs above the copied entries, outermost first
    dest_dir: str = ""  # the destination as a directory (where ADD unpacks a local archive)
    archives: set[str] = field(default_factory=set)  # ADD: sources unpacked rather than copied


def plan(walker: Walker, sources: list[str], dest: str, workdir: str, where: str) -> Plan:
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    to_dir = dest.endswith("/") or len(sources) > 1
    dest_rel = posixpath.normpath(dest).lstrip("/")
    dest_rel = "" if dest_rel == "." else dest_rel
    entries = [(rel, stat.S_ISDIR(node.st.st_mode)) for rel, node in walker()]
    is_dir = dict(entries)
    mapping: dict[str, str] = {}
    for src in sources:
        rel = _clean_source(src, where)
        if rel == "":  # the whole context / stage root: its contents into dest
            matches = [""]
        elif any(c in rel for c in "*?["):
            rx = _pattern_re(rel)
            matches = [r for r, _ in entries if rx.match(r)]
        else:
            matches = [rel] if rel in is_dir else []
        if not matches:
            raise BuildError(f"{where}: no source file matches {src!r}", field="dockerfile")
        for m in matches:
            if m == "" or is_dir.get(m):
                prefix = m + "/" if m else ""
                for r, _ in entries:
                    if r.startswith(prefix) and r != m:
                        mapping[r] = posixpath.join(dest_rel, r[len(prefix):]) if dest_rel else r[len(prefix):]
            else:
                target = posixpath.join(dest_rel, posixpath.basename(m)) if to_dir or len(matches) > 1 else dest_rel
                if not target:
                    raise BuildError(f"{where}: cannot copy a file onto /", field="dockerfile")
                mapping[m] = target
    if dest_rel and (to_dir or any(is_dir.get(m) for m in mapping)):
        top = dest_rel
    else:
        top = posixpath.dirname(dest_rel)
    parents, cur = [], top
    while cur:
        parents.insert(0, cur)
        cur = posixpath.dirname(cur)
    return Plan(mapping, parents, dest_rel)


def mark_archives(walker: Walker, p: Plan) -> None:
    """ADD: a mapped regular file that is a tar archive (plain, gzip or zstd) is unpacked into the destination
    directory, as Docker does with local archives."""
    for rel, node in walker():
        if rel in p.mapping and stat.S_ISREG(node.st.st_mode) and _is_tar(node):
            p.archives.add(rel)
    if p.archives and p.dest_dir:
        cur, parents = p.dest_dir, []
        while cur:
            parents.insert(0, cur)
            cur = posixpath.dirname(cur)
        p.parents = sorted(set(p.parents) | set(parents), key=lambda d: d.count("/"))


def _open_node(node: Node) -> BinaryIO:
    fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=node.dirfd)
    return os.fdopen(fd, "rb")


def _is_tar(node: Node) -> bool:
    with _open_node(node) as f:
        try:
            _, plain = decompressed(f, node.name)
            head = plain.read(512)
        except ImageError:
            return False
    return len(head) == 512 and head[257:262] == b"ustar"


def _unpack_into(writer: TarWriter, node: Node, dest_dir: str, where: str) -> None:
    """Re-emit the archive's entries under `dest_dir`; a name climbing out with `..` refuses the build (the
    layer itself is extracted later with the store's hostile-archive rules)."""
    def under(name: str) -> str:
        clean = posixpath.normpath(name.lstrip("/"))
        if clean == ".." or clean.startswith("../"):
            raise BuildError(f"{where}: the archive entry {name!r} climbs out of the destination",
                             field="dockerfile")
        return posixpath.join(dest_dir, clean) if dest_dir else clean

    with _open_node(node) as f:
        _, plain = decompressed(f, node.name)
        try:
            with tarfile.open(fileobj=plain, mode="r|") as tf:
                for member in tf:
                    if posixpath.normpath(member.name.lstrip("/")) == ".":
                        continue
                    member.name = under(member.name)
                    if member.islnk():
                        member.linkname = under(member.linkname)
                    data = tf.extractfile(member) if member.isreg() else None
                    writer._header(member)
                    if data is not None:
                        while chunk := data.read(1 << 20):
                            writer._write(chunk)
                        if member.size % tarfile.BLOCKSIZE:
                            writer._write(b"\0" * (tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE))
        except tarfile.TarError as e:
            raise BuildError(f"{where}: cannot unpack {node.name}: {e}", field="dockerfile") from None


def content_digest(walker: Walker, p: Plan, chown: tuple[int, int] | None) -> str:
    """What the cache key needs of a COPY: each destination path, its type, mode and content (not mtimes)."""
    h = hashlib.sha256(repr(chown).encode())
    for rel, node in walker():
        target = p.mapping.get(rel)
        if target is None:
            continue
        st = node.st
        h.update(f"\0{target}\0{st.st_mode:o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(node.name, dir_fd=node.dirfd).encode())
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=node.dirfd)
            try:
                while chunk := os.read(fd, 1 << 20):
                    h.update(chunk)
            finally:
                os.close(fd)
    return "sha256:" + h.hexdigest()


class _Writer(TarWriter):
    """A TarWriter whose entries take the COPY's owner (--chown, else root as Docker does)."""

    def __init__(self, out: BinaryIO, owner: tuple[int, int]) -> None:
        super().__init__(out)
        self.owner = owner

    def _info(self, rel: str, st: os.stat_result) -> tarfile.TarInfo:
        info = super()._info(rel, st)
        info.uid, info.gid = self.owner
        return info


def write_layer(out: BinaryIO, walker: Walker, p: Plan, owner: tuple[int, int], stage_layers: list[str],
                where: str = "") -> None:
    """The COPY as a layer: its parent dirs (as they are in the stage, or 0755 root when missing), then the
    mapped entries."""
    writer = _Writer(out, owner)
    with View(stage_layers) as view:
        for parent in p.parents:
            node = view.resolve("/" + parent).node if stage_layers else None
            info = tarfile.TarInfo(parent)
            info.type = tarfile.DIRTYPE
            if node is not None and stat.S_ISDIR(node.st.st_mode):
                info.mode, info.uid, info.gid = stat.S_IMODE(node.st.st_mode), node.st.st_uid, node.st.st_gid
                info.mtime = int(node.st.st_mtime)
            else:
                info.mode, info.mtime = 0o755, 0
            writer._header(info)
    for rel, node in walker():
        target = p.mapping.get(rel)
        if rel in p.archives:
            _unpack_into(writer, node, p.dest_dir, where)
        elif target is not None:
            writer.add(target, node)
    writer.close()


def lookup_owner(spec: str, stage_layers: list[str], where: str) -> tuple[int, int]:
    """`--chown=user[:group]`, numeric or names from the stage's /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    passwd = group_file = b""
    if stage_layers:
        with View(stage_layers) as view:
            passwd = view.read_file("/etc/passwd") or b""
            group_file = view.read_file("/etc/group") or b""

    def find(name: str, table: bytes, what: str) -> tuple[int, int]:
        if name.isdigit():
            return int(name), int(name)
        for line in table.decode(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == name:
                return int(fields[2]), int(fields[3])
        raise BuildError(f"{where}: no {what} {name!r} in the image", field="dockerfile")

    uid, primary_gid = find(user, passwd, "user")
    gid = find(group, group_file, "group")[0] if group else (primary_gid if not user.isdigit() else uid)
    return uid, gid

