"""Hostile-input tar extraction into a fresh directory, converting OCI whiteouts to overlayfs form.

Every entry is checked before anything is written: its path stays inside the target, its parents
are directories this archive made (so nothing is ever written through a symlink), link targets
resolve inside the target, device nodes and setuid bits follow the policy, and no path appears
twice. The caller extracts into a private temp directory and removes it on any error, so a refused
archive leaves nothing behind.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from .errors import CorruptArchive, UnsafeEntry
from .fsutil import CHUNK, Writeback
from .tar_stream import ForwardStream

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# xattrs carried from a tar; trusted.* would let a layer forge overlayfs metadata, so it is dropped.
_ALLOWED_XATTR_PREFIXES = ("user.", "security.capability")


@dataclass(frozen=True)
class TarPolicy:
    """What an archive may contain. setuid: 'refuse' (error), 'strip' (clear the bits) or 'keep'."""

    allow_devices: bool = False
    setuid: str = "refuse"
    whiteouts: bool = True  # convert .wh.* entries to overlayfs whiteouts (layers); False: refuse them

    def __post_init__(self) -> None:
        if self.setuid not in ("refuse", "strip", "keep"):
            raise ValueError(f"setuid policy must be refuse, strip or keep, not {self.setuid!r}")


DEFAULT_POLICY = TarPolicy()
TRUSTED = TarPolicy(allow_devices=False, setuid="keep")


WRITTEN_MAX = 64  # entries listed for flush_tree: past this many, one syncfs (about 0.15 ms an fsync here)


@dataclass
class ExtractStats:
    entries: int = 0
    file_bytes: int = 0
    # The regular files and directories made, relative to the target ('' is the target itself), for flushing
    # them one by one (fsutil.flush_tree); None once there are more than WRITTEN_MAX.
    written: list[str] | None = field(default_factory=lambda: [""])

    def wrote(self, rel: str) -> None:
        if self.written is not None:
            self.written.append(rel)
            if len(self.written) > WRITTEN_MAX:
                self.written = None


def _strict_tarinfo(what: str) -> type[tarfile.TarInfo]:
    """A TarInfo whose header parsing fails loudly.

    tarfile ends the archive quietly at end of input or at a header with a bad checksum; for
    hostile input both mean a cut or corrupt archive, and only a zero block is a real end.
    """

    class StrictTarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf, encoding, errors):
            try:
                return super().frombuf(buf, encoding, errors)
            except tarfile.EOFHeaderError:
                raise
            except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError):
                raise CorruptArchive("truncated: input ends without the end-of-archive marker", what) from None
            except tarfile.HeaderError as e:
                raise CorruptArchive(f"corrupt tar header ({e})", what) from None

    return StrictTarInfo


def normalize_name(name: str, what: str = "path") -> str:
    """The entry's path relative to the root ('' for the root itself), or UnsafeEntry if it could escape."""
    if "\x00" in name:
        raise UnsafeEntry(f"{what} contains a NUL byte", name)
    if name.startswith("/"):
        raise UnsafeEntry(f"absolute {what} refused", name)
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeEntry(f"'..' component in {what} refused", name)
        parts.append(part)
    return "/".join(parts)


def symlink_escapes(rel: str, target: str) -> bool:
    """True if a relative symlink target climbs above the root from the link's directory.

    Absolute targets are read relative to the container's root, where they cannot escape, and this
    extractor never follows links, so only a lexical climb over the root is refused.
    """
    if target.startswith("/"):
        return False
    depth = len(posixpath.dirname(rel).split("/")) if posixpath.dirname(rel) else 0
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if name.startswith(_ALLOWED_XATTR_PREFIXES):
                out[name] = value.encode("utf-8", "surrogateescape")
    return out


def extract(stream: BinaryIO, dest: str, policy: TarPolicy = DEFAULT_POLICY, what: str = "archive") -> ExtractStats:
    """Extract the plain tar `stream` into the existing empty directory `dest`.

    Raises UnsafeEntry/CorruptArchive naming the entry; the caller removes `dest` on error.
    """
    stats = ExtractStats()
    # rel path -> 'dir' | 'implicit' | 'file' | 'link' | 'other'. The root is 'implicit' until a './'
    # entry (the first one of `tar -C rootfs -c .`) gives it its metadata; a second './' is a duplicate.
    seen: dict[str, str] = {"": "implicit"}
    dirs_meta: list[tuple[str, tarfile.TarInfo]] = []
    opaque: set[str] = set()
    try:
        # The plain reader on a forward-only stream, not tarfile's stream mode: see tar_stream.py
        tf = tarfile.open(fileobj=ForwardStream(stream), mode="r:", errorlevel=2, tarinfo=_strict_tarinfo(what))
    except tarfile.ReadError as e:
        raise CorruptArchive(f"not a tar archive ({e})", what) from None
    try:
        while True:
            try:
                member = tf.next()
            except tarfile.ReadError as e:
                raise CorruptArchive(f"corrupt tar header after {stats.entries} entries ({e})", what) from None
            if member is None:
                break
            tf.members.clear()  # tarfile keeps every member otherwise: memory would grow with the archive
            stats.entries += 1
            _extract_one(tf, member, dest, policy, seen, dirs_meta, opaque, stats)
    except (EOFError, tarfile.ReadError) as e:
        raise CorruptArchive(f"truncated or corrupt tar data ({e})", what) from None
    finally:
        tf.close()
    for rel in opaque:
        os.setxattr(os.path.join(dest, rel), OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
    # Directory metadata last (adding children changes mtime), deepest first.
    for rel, member in reversed(dirs_meta):
        path = os.path.join(dest, rel) if rel else dest
        _apply_meta(path, member, policy, is_dir=True)
    return stats


def _check_parents(rel: str, dest: str, seen: dict[str, str], name: str, stats: ExtractStats) -> None:
    parent = posixpath.dirname(rel)
    missing = []
    while parent not in seen:
        missing.append(parent)
        parent = posixpath.dirname(parent)
    if seen[parent] not in ("dir", "implicit"):
        raise UnsafeEntry(f"parent {parent!r} is not a directory in this archive (overlapping entry)", name)
    for p in reversed(missing):
        os.mkdir(os.path.join(dest, p), 0o755)
        seen[p] = "implicit"
        stats.wrote(p)


def _apply_meta(path: str, member: tarfile.TarInfo, policy: TarPolicy, is_dir: bool = False) -> None:
    os.lchown(path, member.uid, member.gid)
    if not member.issym():
        os.chmod(path, _mode(member, policy))
    for key, value in _xattrs(member).items():
        os.setxattr(path, key, value, follow_symlinks=False)
    mtime = member.mtime if isinstance(member.mtime, (int, float)) else 0
    os.utime(path, (mtime, mtime), follow_symlinks=False)


def _mode(member: tarfile.TarInfo, policy: TarPolicy) -> int:
    mode = member.mode & 0o7777
    if policy.setuid == "strip":
        mode &= ~(stat.S_ISUID | stat.S_ISGID)
    return mode


def _extract_one(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: str, policy: TarPolicy,
                 seen: dict[str, str], dirs_meta: list, opaque: set[str], stats: ExtractStats) -> None:
    name = member.name
    rel = normalize_name(name)
    if not member.isdir() and rel == "":
        raise UnsafeEntry("non-directory entry for the root", name)
    if member.mode & (stat.S_ISUID | stat.S_ISGID) and policy.setuid == "refuse" and not member.isdir():
        raise UnsafeEntry("setuid/setgid bit refused by policy", name)
    base = posixpath.basename(rel)
    if base.startswith(WHITEOUT_PREFIX):
        if not policy.whiteouts:
            raise UnsafeEntry("whiteout entry not allowed here", name)
        if not (member.isreg() or member.isdir()):
            raise UnsafeEntry("whiteout entry must be a plain file", name)
        parent = posixpath.dirname(rel)
        _check_parents(rel, dest, seen, name, stats)
        if base == OPAQUE_MARKER:
            opaque.add(parent)
            return
        hidden = posixpath.join(parent, base[len(WHITEOUT_PREFIX):]) if parent else base[len(WHITEOUT_PREFIX):]
        if hidden in seen or base == WHITEOUT_PREFIX:
            raise UnsafeEntry("whiteout overlaps another entry", name)
        os.mknod(os.path.join(dest, hidden), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        seen[hidden] = "other"
        return
    if rel in seen:
        if member.isdir() and seen[rel] == "implicit":
            seen[rel] = "dir"
            dirs_meta.append((rel, member))
            return
        raise UnsafeEntry("duplicate entry", name)
    _check_parents(rel, dest, seen, name, stats)
    path = os.path.join(dest, rel)
    if member.isdir():
        if rel:
            os.mkdir(path, 0o700)
            stats.wrote(rel)
        seen[rel] = "dir"
        dirs_meta.append((rel, member))
        return
    if member.isreg():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            # Read from the archive's stream itself, where the header left it, as its reads come (extractfile's
            # reader copies every block once more); a sparse file's map needs extractfile.
            direct = member.sparse is None and tf.fileobj.tell() == member.offset_data
            read = tf.fileobj.read_some if direct else tf.extractfile(member).read
            out = Writeback(fd)  # a large file is on its way to the disk before the layer's commit waits for it
            remaining = member.size
            while remaining > 0:
                chunk = read(min(CHUNK, remaining))
                if not chunk:
                    raise CorruptArchive("truncated: file data ends early", name)
                out.write(chunk)
                remaining -= len(chunk)
            stats.file_bytes += member.size
        finally:
            os.close(fd)
        seen[rel] = "file"
        stats.wrote(rel)
        _apply_meta(path, member, policy)
        return
    if member.issym():
        target = member.linkname
        if "\x00" in target:
            raise UnsafeEntry("symlink target contains a NUL byte", name)
        if not target:  # symlink(2) refuses it (ENOENT); a clear refusal instead of an OSError
            raise UnsafeEntry("symlink target is empty", name)
        if symlink_escapes(rel, target):
            raise UnsafeEntry(f"symlink target {target!r} escapes the root", name)
        os.symlink(target, path)
        seen[rel] = "link"
        _apply_meta(path, member, policy)
        return
    if member.islnk():
        try:
            target = normalize_name(member.linkname, "hard link target")
        except UnsafeEntry as e:
            raise UnsafeEntry(f"hard link target {member.linkname!r} refused ({e})", name) from None
        if seen.get(target) not in ("file", "link"):
            raise UnsafeEntry(f"hard link target {member.linkname!r} is not an earlier file of this archive", name)
        os.link(os.path.join(dest, target), path, follow_symlinks=False)
        seen[rel] = "file"
        return
    if member.isfifo():
        os.mkfifo(path, 0o600)
        seen[rel] = "other"
        _apply_meta(path, member, policy)
        return
    if member.ischr() or member.isblk():
        if not policy.allow_devices:
            raise UnsafeEntry("device node refused by policy", name)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        seen[rel] = "other"
        _apply_meta(path, member, policy)
        return
    raise UnsafeEntry(f"unsupported tar entry type {member.type!r}", name)

