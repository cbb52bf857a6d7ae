"""config.json for a container: the runtime's default spec, the image config and the user's
settings merged with Docker's rules (command replaces Cmd, entrypoint replaces Entrypoint, env
merged by key), limits as OCI resources, mounts, and the overlay annotations the runtime reads."""

from __future__ import annotations

import os
from pathlib import Path

from workers.engine.runtime.seccomp_profile import default_profile
from workers.engine.runtime.spec import default_spec

from .config import CPU_PERIOD, merge_env, parse_mount
from .errors import InvalidConfig

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_file(layers: list[str], rel: str) -> Path | None:
    """A file of the image as the merged rootfs would show it (topmost layer first)."""
    for layer in layers:
        p = Path(layer) / rel.lstrip("/")
        if p.is_symlink() or p.exists():
            return p if p.is_file() and not p.is_symlink() else None
    return None


def _lookup(layers: list[str], rel: str, key: str, field_index: int) -> tuple[int, int] | None:
    path = image_file(layers, rel)
    if path is None:
        return None
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) > field_index and parts[0] == key:
            try:
                return int(parts[2]), int(parts[3]) if field_index >= 3 else 0
            except ValueError:
                return None
    return None


def resolve_user(user: str | None, layers: list[str], image_ref: str) -> dict:
    """'name', 'uid', 'name:group', 'uid:gid' -> OCI process.user, names from the image's files."""
    if not user:
        return {"uid": 0, "gid": 0}
    u, _, g = user.partition(":")
    if u.isdigit():
        uid = int(u)
        found = None
        path = image_file(layers, "/etc/passwd")
        if path is not None:
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split(":")
                if len(parts) > 3 and parts[2] == u and parts[3].isdigit():
                    found = int(parts[3])
                    break
        gid = found if found is not None else uid
    else:
        pw = _lookup(layers, "/etc/passwd", u, 3)
        if pw is None:
            raise InvalidConfig("user", f"user {u!r} is not in /etc/passwd of image {image_ref}")
        uid, gid = pw
    if g:
        if g.isdigit():
            gid = int(g)
        else:
            gr = _lookup(layers, "/etc/group", g, 2)
            if gr is None:
                raise InvalidConfig("user", f"group {g!r} is not in /etc/group of image {image_ref}")
            gid = gr[0]
    if uid > 2**32 - 2 or gid > 2**32 - 2:
        raise InvalidConfig("user", f"user {user!r}: id out of range")
    return {"uid": uid, "gid": gid}


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


def volume_dir(state_root: Path, name: str) -> Path:
    return state_root / "volumes" / name / "_data"


def build_spec(*, cid: str, cfg: dict, image_ref: str, image_cfg: dict, rootfs: dict, state_root: Path) -> dict:
    """The OCI config.json (root.path "rootfs", relative to the bundle)."""
    layers = [rootfs["upperdir"], *rootfs["lowerdirs"]]
    args = process_args(cfg, image_cfg)
    spec = default_spec(args, terminal=cfg["tty"])
    proc = spec["process"]
    hostname = cfg["hostname"] or cid[:12]
    env = merge_env([DEFAULT_PATH] + (["TERM=xterm"] if cfg["tty"] else []), list(image_cfg.get("Env") or []))
    proc["env"] = merge_env(env, [f"HOSTNAME={hostname}", *cfg["env"]])
    proc["cwd"] = cfg["workdir"] or image_cfg.get("WorkingDir") or "/"
    if not proc["cwd"].startswith("/"):
        proc["cwd"] = "/" + proc["cwd"]
    proc["user"] = resolve_user(cfg["user"] or image_cfg.get("User") or None, layers, image_ref)
    spec["hostname"] = hostname
    spec["root"] = {"path": "rootfs", "readonly": cfg["read_only"]}
    linux = spec["linux"]
    linux["cgroupsPath"] = f"/berth/{cid}"
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
    for m in (parse_mount(s) for s in cfg["mounts"]):
        if m["type"] == "volume":
            src = volume_dir(state_root, m["name"])
            src.mkdir(parents=True, exist_ok=True)
        else:
            src = Path(m["source"])
        opts = ["rbind", "rprivate"] + (["ro"] if m["read_only"] else [])
        spec["mounts"].append({"destination": m["destination"], "type": "bind", "source": str(src),
                               "options": opts})
    spec["annotations"] = {
        "org.berth.rootfs.lowerdirs": ":".join(rootfs["lowerdirs"]),
        "org.berth.rootfs.upperdir": rootfs["upperdir"],
        "org.berth.rootfs.workdir": rootfs["workdir"],
        **{f"org.berth.label.{k}": v for k, v in cfg["labels"].items()},
    }
    ensure_workdir(layers, proc["cwd"], proc["user"])
    return spec


def ensure_workdir(layers: list[str], cwd: str, user: dict) -> None:
    """Docker makes a missing working directory; we make it in the container's upper dir."""
    if cwd == "/":
        return
    for layer in layers:
        p = os.path.join(layer, cwd.lstrip("/"))
        if os.path.lexists(p):
            return
    target = Path(layers[0]) / cwd.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    os.chown(target, user["uid"], user["gid"])
