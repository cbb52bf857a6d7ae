"""Named volumes of one host, addressed by engine id: `<state root>/volumes/<64 hex id>/_data`.

A volume's name is only a label here (several tenants may each have a volume `data` on one host; the
control plane keeps their name spaces). Containers mount a volume by its id (`<id>:/dst[:ro]`), so the
host mounts exactly the directory the control plane chose, never one found by a bare name.

Volume changes and container creation hold the host-wide names lock (`locks/names.lock`, the one
ContainerManager.create holds), so a volume cannot be removed between the in-use check and a container
being made with it. Removal is fd-based (shutil.rmtree avoids symlink attacks on Linux), so a symlink a
container left inside the volume is removed, never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers.engine import flocks
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.layout import write_json_atomic
from workers.engine.storage import quota

from .config import VOLUME_RE, parse_mount
from .errors import ContainerError, InvalidConfig

ID_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_MAX = 128


class VolumeError(ContainerError):
    """A refused volume operation: `code` is stable, `field` names the argument at fault."""

    code = "volume_error"

    def __init__(self, message: str, *, field: str = "volume") -> None:
        super().__init__(message)
        self.field = field


class NoSuchVolume(VolumeError):
    code = "no_such_volume"


class VolumeInUse(VolumeError):
    code = "volume_in_use"


class AmbiguousVolume(VolumeError):
    code = "ambiguous"


class InvalidVolume(VolumeError):
    code = "invalid"


def is_id(text: Any) -> bool:
    return isinstance(text, str) and bool(ID_RE.match(text))


def volumes_dir(root: str | os.PathLike[str]) -> Path:
    return Path(root) / "volumes"


def volume_path(root: str | os.PathLike[str], vid: str) -> Path:
    """`<root>/volumes/<id>` of a well-formed id (anything else could walk out of the volumes dir)."""
    if not is_id(vid):
        raise InvalidVolume(f"invalid volume id {str(vid)[:80]!r}: expected 64 hex digits", field="id")
    return volumes_dir(root) / vid


def data_dir(root: str | os.PathLike[str], vid: str) -> Path:
    """The directory containers see at their mount point."""
    return volume_path(root, vid) / "_data"


@contextlib.contextmanager
def names_lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """The host-wide lock ContainerManager.create holds while it makes a container (and its mounts)."""
    locks = Path(root) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with flocks.held(locks / "names.lock"):
        yield


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or not VOLUME_RE.match(name):
        raise InvalidVolume(f"invalid volume name {str(name)[:80]!r}: use letters, digits, '_', '.', '-' (starting "
                            f"with a letter or digit, at most {NAME_MAX})", field="name")
    return name


def _check_labels(labels: Any) -> dict[str, str]:
    if labels in (None, ""):
        return {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidVolume("labels must be a mapping of strings to strings", field="labels")
    return dict(labels)


def _record(root: str | os.PathLike[str], vid: str) -> dict[str, Any] | None:
    try:
        rec = json.loads((volume_path(root, vid) / "volume.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _view(root: str | os.PathLike[str], rec: dict[str, Any]) -> dict[str, Any]:
    return {"id": rec["id"], "name": rec.get("name", ""), "labels": dict(rec.get("labels") or {}),
            "created": rec.get("created"), "mountpoint": str(data_dir(root, rec["id"])), "driver": "local",
            "size": rec.get("size")}


def _ensure(root: str | os.PathLike[str], vid: str, name: str, labels: dict[str, str], *,
            auto: bool = False, size: int | None = None) -> dict[str, Any]:
    """Make the volume if it is missing (its record last: a half-made one has none and is made again).
    One a container's mount made (`auto`) takes the name and labels of the create that follows. With a
    `size`, its data dir is a filesystem of that size (storage/quota.py): writes past it fail with ENOSPC."""
    rec = _record(root, vid)
    if rec is not None:
        if rec.get("size"):
            quota.ensure_mounted(data_dir(root, vid))  # after a reboot
        if rec.get("auto") and not auto:
            rec = {**rec, "id": vid, "name": name, "labels": labels, "created": rec.get("created") or rfc3339_nano()}
            rec.pop("auto", None)
            write_json_atomic(volume_path(root, vid) / "volume.json", rec)
        return rec
    vdir = volume_path(root, vid)
    vdir.mkdir(parents=True, mode=0o700, exist_ok=True)
    if size:
        if not quota.ensure_mounted(vdir / "_data"):
            try:
                quota.make(vdir / "_data", size, templates=quota.templates_dir(root))
            except quota.QuotaError as exc:
                raise InvalidVolume(f"cannot give the volume its size limit: {exc}", field="size") from None
        os.chmod(vdir / "_data", 0o755)
    else:
        (vdir / "_data").mkdir(mode=0o755, exist_ok=True)
    rec = {"id": vid, "name": name, "labels": labels, "created": rfc3339_nano(), **({"size": size} if size else {}),
           **({"auto": True} if auto else {})}
    write_json_atomic(vdir / "volume.json", rec)
    return rec


def create(root: str | os.PathLike[str], name: str, *, id: str | None = None,
           labels: dict[str, str] | None = None, size: int | None = None) -> dict[str, Any]:
    """Make a volume named `name` (a new id unless `id` is given). With an `id` that exists already the
    call is a no-op returning it (a job re-run after a worker died)."""
    name = _check_name(name)
    labels = _check_labels(labels)
    vid = id if id is not None else secrets.token_hex(32)
    volume_path(root, vid)  # checks the id
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < quota.MIN_SIZE):
        raise InvalidVolume(f"size must be at least {quota.MIN_SIZE >> 20} MiB", field="size")
    with names_lock(root):
        return _view(root, _ensure(root, vid, name, labels, size=size))


def ensure_for_mount(root: str | os.PathLike[str], vid: str) -> Path:
    """The data dir a container mounts, the volume made if its create job has not run yet (the caller
    holds the names lock). Only ids are accepted: a name would find whichever volume had it."""
    if not is_id(vid):
        raise InvalidConfig("mounts", f"volume {str(vid)[:80]!r} is not a volume id: mounts name volumes by their "
                                      "64-hex id (berth volume ls shows them)")
    _ensure(root, vid, vid[:12], {}, auto=True)
    return data_dir(root, vid)


def inspect(root: str | os.PathLike[str], ref: str) -> dict[str, Any]:
    return _view(root, _record(root, resolve(root, ref)))  # type: ignore[arg-type]


def list_volumes(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    out = []
    vdir = volumes_dir(root)
    if not vdir.is_dir():
        return out
    for entry in sorted(os.listdir(vdir)):
        if is_id(entry):
            rec = _record(root, entry)
            if rec is not None:
                out.append(_view(root, rec))
    return sorted(out, key=lambda v: (v["name"], v["created"] or ""))


def resolve(root: str | os.PathLike[str], ref: str) -> str:
    """id, unique id prefix, or name when exactly one volume has it (the host's own command line)."""
    if not isinstance(ref, str) or not ref:
        raise NoSuchVolume(f"no such volume {ref!r}")
    if is_id(ref) and _record(root, ref) is not None:
        return ref
    found = list_volumes(root)
    by_name = [v["id"] for v in found if v["name"] == ref]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise AmbiguousVolume(f"volume name {ref!r} is ambiguous: {len(by_name)} volumes have it; use the id")
    by_prefix = [v["id"] for v in found if v["id"].startswith(ref.lower())] if re.fullmatch(r"[0-9a-fA-F]+", ref) else []
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise AmbiguousVolume(f"volume id prefix {ref!r} is ambiguous: {len(by_prefix)} volumes match")
    raise NoSuchVolume(f"no such volume {ref!r}")


def users(root: str | os.PathLike[str], vid: str) -> list[dict[str, str]]:
    """The containers on this host whose config mounts volume `vid`: [{"id", "name"}]."""
    out = []
    for path in sorted((Path(root) / "containers").glob("*/container.json")):
        try:
            rec = json.loads(path.read_text())
            mounts = rec["config"]["mounts"] or []
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for spec in mounts:
            try:
                m = parse_mount(spec)
            except ContainerError:
                continue
            if m["type"] == "volume" and m["name"] == vid:
                out.append({"id": str(rec.get("id", path.parent.name)), "name": str(rec.get("name", ""))})
                break
    return out


def remove(root: str | os.PathLike[str], ref: str, *, force: bool = False) -> dict[str, Any]:
    """Delete a volume and its data. Refused (VolumeInUse) while a container on this host mounts it,
    unless `force` (the caller knows those containers are being removed). Returns what was removed."""
    with names_lock(root):
        vid = resolve(root, ref)
        view = _view(root, _record(root, vid) or {"id": vid})
        using = users(root, vid)
        if using and not force:
            names = ", ".join(u["name"] or u["id"][:12] for u in using[:5])
            raise VolumeInUse(f"volume {view['name'] or vid[:12]} is in use by container(s) {names}: remove them "
                              "first")
        # Renamed first, so no container can be made with it from here on; then removed without following
        # any link inside it.
        quota.release_if_any(data_dir(root, vid))  # its own filesystem first: rmtree must not cross a mount
        tomb = volumes_dir(root) / f".removing-{vid}"
        if tomb.exists():
            _rmtree(tomb)
        os.rename(volume_path(root, vid), tomb)
        _rmtree(tomb)
        return view


def _rmtree(path: Path) -> None:
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux always has the fd-based rmtree
        raise VolumeError("this platform's rmtree may follow symlinks: refusing to remove a volume")
    shutil.rmtree(path)


def mounts_by_name(root: str | os.PathLike[str], mounts: list[str] | None) -> list[str]:
    """The host command line's `-v name:/dst`: each volume name becomes the id of the one volume of that
    name (made when there is none, as docker run does); bind mounts and ids stay as they are."""
    out = []
    for spec in mounts or []:
        m = parse_mount(spec)
        if m["type"] != "volume" or (is_id(m["name"]) and _record(root, m["name"]) is not None):
            out.append(spec)
            continue
        try:
            vid = resolve(root, m["name"])
        except NoSuchVolume:
            vid = create(root, m["name"])["id"]
        out.append(f"{vid}:{m['destination']}" + (":ro" if m["read_only"] else ""))
    return out
