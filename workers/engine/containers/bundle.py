"""config.json for a container: the runtime's default spec, the image config and the user's
settings merged with Docker's rules (command replaces Cmd, entrypoint replaces Entrypoint, env
merged by key), limits as OCI resources, mounts, and the overlay annotations the runtime reads."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path

from workers.engine.confined import open_beneath
from workers.engine.defaults import PATH_ENV
from workers.engine.images.merged import View
from workers.engine.runtime.mountpoint import NOFOLLOW_SOURCES
from workers.engine.runtime.seccomp_profile import default_profile
from workers.engine.runtime.spec import default_spec

from . import volumes
from .config import CPU_PERIOD, merge_env, parse_mount
from .errors import InvalidConfig

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _entries(view: View, rel: str) -> list[list[str]]:
    """The colon-separated records of a passwd/group file of the image, read inside the image only."""
    data = view.read_file(rel)
    if data is None:
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()]


def _lookup(view: View, rel: str, key: str, field_index: int) -> tuple[int, int] | None:
    for parts in _entries(view, rel):
        if len(parts) > field_index and parts[0] == key:
            try:
                return int(parts[2]), int(parts[3]) if field_index >= 3 else 0
            except ValueError:
                return None
    return None


def resolve_user(user: str | None, layers: list[str], image_ref: str) -> dict:
    """'name', 'uid', 'name:group', 'uid:gid' -> OCI process.user, names from the image's own files.

    The files are looked up in the image's merged view, symlinks followed inside it only: an image whose /etc
    links to the host's /etc reads its own (missing) files, never the host's."""
    if not user:
        return {"uid": 0, "gid": 0}
    u, _, g = user.partition(":")
    with View(layers) as view:
        if u.isdigit():
            uid = int(u)
            gid = next((int(p[3]) for p in _entries(view, "/etc/passwd")
                        if len(p) > 3 and p[2] == u and p[3].isdigit()), uid)
        else:
            pw = _lookup(view, "/etc/passwd", u, 3)
            if pw is None:
                raise InvalidConfig("user", f"user {u!r} is not in /etc/passwd of image {image_ref}")
            uid, gid = pw
        if g:
            if g.isdigit():
                gid = int(g)
            else:
                gr = _lookup(view, "/etc/group", g, 2)
                if gr is None:
                    raise InvalidConfig("user", f"group {g!r} is not in /etc/group of image {image_ref}")
                gid = gr[0]
    if uid > 2**32 - 2 or gid > 2**32 - 2:
        raise InvalidConfig("user", f"user {user!r}: id out of range")
    return {"uid": uid, "gid": gid}


def confined_bind_source(source: str, roots: list[str]) -> str:
    """A bind source a non-superuser asked for: under one of the allowed roots, reached without any symlink
    below that root (a tenant who can write under the root could otherwise link to / and mount the host).
    Returns the real path (the root's own links resolved); the runtime opens it again with no symlink
    allowed (annotation NOFOLLOW_SOURCES), so a link swapped in later is refused at every start."""
    src = os.path.normpath(source)
    for root in roots:
        root = os.path.normpath(root)
        if src != root and not src.startswith(root.rstrip("/") + "/"):
            continue
        try:
            rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise InvalidConfig("mounts", f"bind mount root {root} is not usable on this host: {e.strerror}") from None
        try:
            os.close(open_beneath(rootfd, os.path.relpath(src, root), os.O_PATH))
            return os.path.normpath(os.path.join(os.path.realpath(f"/proc/self/fd/{rootfd}"), os.path.relpath(src, root)))
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EXDEV):
                raise InvalidConfig("mounts", f"bind mount source {source} goes through a symbolic link "
                                              f"under {root}: refused") from None
            raise InvalidConfig("mounts", f"bind mount source {source}: {e.strerror}") from None
        finally:
            os.close(rootfd)
    allowed = ", ".join(roots) or "none"
    raise InvalidConfig("mounts", f"bind mount of {source} refused: only superusers may bind-mount host paths "
                                  f"(allowed roots: {allowed})")


def process_args(cfg: dict, image_cfg: dict) -> list[str]:
    entry = cfg["entrypoint"] if cfg["entrypoint"] is not None else list(image_cfg.get("Entrypoint") or [])
    if cfg["command"] is not None:
        cmd = cfg["command"]
    elif cfg["entrypoint"] is not None:
        cmd = []  # a new entrypoint drops the image's Cmd, as docker does
    else:
        cmd = list(image_cfg.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise InvalidConfig("command", "no command given and the image has neither Cmd nor Entrypoint")
    return args


def cgroup_path(cid: str) -> str:
    """The container's cgroup, under every hierarchy (the runtime makes it from config.json)."""
    return f"/berth/{cid}"


def build_spec(*, cid: str, cfg: dict, image_ref: str, image_cfg: dict, rootfs: dict, state_root: Path) -> dict:
    """The OCI config.json (root.path "rootfs", relative to the bundle) from `cfg`, the container's stored
    spec JSON (spec.py) with the host's defaults filled in."""
    layers = [rootfs["upperdir"], *rootfs["lowerdirs"]]
    args = process_args(cfg, image_cfg)
    spec = default_spec(args, terminal=cfg["tty"])
    proc = spec["process"]
    hostname = cfg["hostname"] or cid[:12]
    env = merge_env([PATH_ENV] + (["TERM=xterm"] if cfg["tty"] else []), list(image_cfg.get("Env") or []))
    user_env = cfg["env"]  # the spec's {"K": "V"} (records older than the spec: ["K=V"])
    if isinstance(user_env, dict):
        user_env = [f"{k}={val}" for k, val in user_env.items()]
    proc["env"] = merge_env(env, [f"HOSTNAME={hostname}", *user_env])
    proc["cwd"] = cfg["workdir"] or image_cfg.get("WorkingDir") or "/"
    if not proc["cwd"].startswith("/"):
        proc["cwd"] = "/" + proc["cwd"]
    proc["user"] = resolve_user(cfg["user"] or image_cfg.get("User") or None, layers, image_ref)
    spec["hostname"] = hostname
    spec["root"] = {"path": "rootfs", "readonly": cfg["read_only"]}
    linux = spec["linux"]
    linux["cgroupsPath"] = cgroup_path(cid)
    linux["seccomp"] = default_profile()
    res = linux.setdefault("resources", {})
    if cfg["memory"] is not None:
        swap = cfg["memory_swap"] if cfg["memory_swap"] is not None else cfg["memory"]
        res["memory"] = {"limit": cfg["memory"], "swap": swap}
    cpu: dict = {}
    if cfg["cpus"] is not None:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = max(1000, int(cfg["cpus"] * CPU_PERIOD))
    if cfg["cpu_shares"] is not None:
        cpu["shares"] = cfg["cpu_shares"]
    if cpu:
        res["cpu"] = cpu
    if cfg.get("pids_limit") is not None:
        res["pids"] = {"limit": cfg["pids_limit"]}
    confined: list[str] = []
    for m in (parse_mount(s) for s in cfg["mounts"]):
        if m["type"] == "volume":
            src = volumes.ensure_for_mount(state_root, m["name"])  # by id only, never by a bare name
        elif cfg.get("bind_roots") is not None:
            src = confined_bind_source(m["source"], cfg["bind_roots"])
            confined.append(m["destination"])
        else:
            src = Path(m["source"])
        opts = ["rbind", "rprivate"] + (["ro"] if m["read_only"] else [])
        spec["mounts"].append({"destination": m["destination"], "type": "bind", "source": str(src),
                               "options": opts})
    spec["annotations"] = {
        **({NOFOLLOW_SOURCES: json.dumps(confined)} if confined else {}),
        "org.berth.rootfs.lowerdirs": ":".join(rootfs["lowerdirs"]),
        "org.berth.rootfs.upperdir": rootfs["upperdir"],
        "org.berth.rootfs.workdir": rootfs["workdir"],
        **{f"org.berth.label.{k}": v for k, v in cfg["labels"].items()},
    }
    ensure_workdir(layers, proc["cwd"], proc["user"])
    return spec


def ensure_workdir(layers: list[str], cwd: str, user: dict) -> None:
    """Docker makes a missing working directory; we make it in the container's upper dir (layers[0]).

    The path is resolved in the merged view (an image's `/app -> /srv/app` makes /srv/app), and the upper dir
    is walked by descriptors with O_NOFOLLOW, so no link can lead the mkdir or the chown out of it."""
    with View(layers) as view:
        try:
            found = view.resolve(cwd)
        except OSError as e:
            raise InvalidConfig("workdir", f"working directory {cwd}: {e.strerror}") from None
        if found.node is not None:
            return
        cur = os.open(layers[0], _DIR | os.O_NOFOLLOW)
        try:
            for depth, part in enumerate(found.parts):
                lower = view.resolve("/" + "/".join(found.parts[:depth + 1])).node
                if lower is not None and not stat.S_ISDIR(lower.st.st_mode):
                    raise InvalidConfig("workdir", f"working directory {cwd}: /{'/'.join(found.parts[:depth + 1])} "
                                                   "is not a directory in the image")
                if _in_upper(cur, part):
                    nxt = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=cur)  # a link here now: ELOOP, refused
                elif lower is not None:
                    nxt = _copy_up_dir(cur, part, lower.st)
                else:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=cur)
                    nxt = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=cur)
                    os.fchown(nxt, user["uid"], user["gid"])
                os.close(cur)
                cur = nxt
        finally:
            os.close(cur)


def _in_upper(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _copy_up_dir(dirfd: int, name: str, st: os.stat_result) -> int:
    """An upper-dir twin of a lower directory (same mode and owner), so that the merged view keeps its look."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=dirfd)
    fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=dirfd)
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    return fd
