"""Root filesystem setup, run by the container init inside its new mount namespace.

Order (as runc): / made private, rootfs (overlay from the org.berth.rootfs.* annotations,
else a bind of root.path onto itself), config mounts in order, /dev nodes and symlinks,
pivot_root; then, inside, maskedPaths, readonlyPaths and root.readonly.
"""

from __future__ import annotations

import errno
import os
import stat

from . import jsonfast
from . import linux as L
from .mountpoint import NOFOLLOW_SOURCES, fd_target, open_destination, open_source_nofollow, reopen_mounted

_FLAGS = {
    "ro": (L.MS_RDONLY, False), "rw": (L.MS_RDONLY, True),
    "nosuid": (L.MS_NOSUID, False), "suid": (L.MS_NOSUID, True),
    "nodev": (L.MS_NODEV, False), "dev": (L.MS_NODEV, True),
    "noexec": (L.MS_NOEXEC, False), "exec": (L.MS_NOEXEC, True),
    "sync": (L.MS_SYNCHRONOUS, False), "async": (L.MS_SYNCHRONOUS, True),
    "dirsync": (L.MS_DIRSYNC, False), "remount": (L.MS_REMOUNT, False),
    "mand": (L.MS_MANDLOCK, False), "nomand": (L.MS_MANDLOCK, True),
    "atime": (L.MS_NOATIME, True), "noatime": (L.MS_NOATIME, False),
    "diratime": (L.MS_NODIRATIME, True), "nodiratime": (L.MS_NODIRATIME, False),
    "bind": (L.MS_BIND, False), "rbind": (L.MS_BIND | L.MS_REC, False),
    "relatime": (L.MS_RELATIME, False), "norelatime": (L.MS_RELATIME, True),
    "strictatime": (L.MS_STRICTATIME, False), "nostrictatime": (L.MS_STRICTATIME, True),
    "lazytime": (L.MS_LAZYTIME, False), "nolazytime": (L.MS_LAZYTIME, True),
    "silent": (L.MS_SILENT, False), "loud": (L.MS_SILENT, True),
    "nosymfollow": (L.MS_NOSYMFOLLOW, False), "symfollow": (L.MS_NOSYMFOLLOW, True),
}
PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
_ST_TO_MS = ((1, L.MS_RDONLY), (2, L.MS_NOSUID), (4, L.MS_NODEV), (8, L.MS_NOEXEC),
             (1024, L.MS_NOATIME), (2048, L.MS_NODIRATIME), (4096, L.MS_RELATIME))

# (path, type, major, minor) created in a tmpfs /dev
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"))


def parse_options(options: list[str] | None) -> tuple[int, list[int], str]:
    """Mount options -> (flags, propagation flags, data string)."""
    flags, prop, data = 0, [], []
    for o in options or ():
        if o in _FLAGS:
            bit, clear = _FLAGS[o]
            flags = flags & ~bit if clear else flags | bit
        elif o in PROPAGATION:
            prop.append(PROPAGATION[o])
        elif o in ("rro", "rrw", "rnosuid", "rnodev", "rnoexec", "tmpcopyup", "idmap", "ridmap"):
            continue  # recursive/extension flags runc knows; not supported here, harmless to skip
        else:
            data.append(o)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """root + unsafe with every symlink resolved as if root were / (no escape via .. or links)."""
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cand = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(cand)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                raise OSError(errno.ELOOP, f"too many symlinks under {unsafe}")
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mnt_flags_of(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if f & st)


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def _cgroup_mount(dest: str, flags: int, new_cgroupns: bool, cgroup_dirs: dict[str, str] | None,
                  reopen) -> None:
    """/sys/fs/cgroup as the host has it: cgroup2 directly, or a tmpfs with one v1 hierarchy
    per directory (fresh mounts when a cgroup namespace was made, else binds of the
    container's own cgroup directories). `dest` names the directory mounted over; `reopen()` gives a
    descriptor of the mount made on it (paths through `dest` would still reach the directory below)."""
    from .cgroups import UNIFIED, _own_cgroup, hierarchies

    hs = hierarchies()
    ro = flags & L.MS_RDONLY
    base = flags & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
    if [h[0] for h in hs] == [UNIFIED]:
        try:
            L.mount("cgroup2", dest, "cgroup2", flags)
            return
        except PermissionError:
            if not cgroup_dirs:
                raise
            src = cgroup_dirs[UNIFIED]
            L.mount(src, dest, None, L.MS_BIND | L.MS_REC)
            fd = reopen()
            try:
                L.mount(src, fd_target(fd), None, L.MS_BIND | L.MS_REMOUNT | ro | base)
            finally:
                os.close(fd)
            return
    L.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    fd = reopen()
    try:
        _cgroup_v1_dirs(fd_target(fd), hs, ro, base, new_cgroupns, cgroup_dirs, _own_cgroup(), UNIFIED)
        if ro:
            L.mount("tmpfs", fd_target(fd), None, L.MS_REMOUNT | L.MS_RDONLY | base)
    finally:
        os.close(fd)


def _cgroup_v1_dirs(dest: str, hs, ro: int, base: int, new_cgroupns: bool, cgroup_dirs: dict[str, str] | None,
                    own: dict[str, str], unified: str) -> None:
    for key, mnt, _root in hs:
        if key == unified:
            continue  # hybrid host: like runc, the container sees the v1 hierarchies only
        name = key.replace("name=", "") if key.startswith("name=") else key
        sub = os.path.join(dest, name)  # inside the fresh tmpfs: nothing a container wrote
        os.makedirs(sub, exist_ok=True)
        mounted = False
        if new_cgroupns:
            try:
                L.mount("cgroup", sub, "cgroup", base | ro, key)
                mounted = True
            except PermissionError:
                pass  # v1 cannot be mounted from a user namespace: bind our own directory
        if not mounted:
            src = (cgroup_dirs or {}).get(key) or os.path.join(mnt, own.get(key, "/").lstrip("/"))
            L.mount(src, sub, None, L.MS_BIND | L.MS_REC)
            if ro:
                L.mount(src, sub, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | base)
        if "," in key:  # cpu,cpuacct -> cpu and cpuacct links, as on the host
            for c in key.split(","):
                if not os.path.lexists(os.path.join(dest, c)):
                    os.symlink(name, os.path.join(dest, c))


def do_mount(rootfs: str, bundle: str, m: dict, new_cgroupns: bool, cgroup_dirs: dict[str, str] | None = None,
             nofollow_source: bool = False) -> None:
    """One config mount, onto a destination opened inside the rootfs (see mountpoint.py): by descriptor.
    With `nofollow_source`, the bind source too is opened with no symlink allowed on its path."""
    if not nofollow_source:
        _do_mount(rootfs, bundle, m, new_cgroupns, cgroup_dirs)
        return
    src_fd = open_source_nofollow(m.get("source") or "")
    try:
        _do_mount(rootfs, bundle, {**m, "source": fd_target(src_fd)}, new_cgroupns, cgroup_dirs)
    finally:
        os.close(src_fd)


def _do_mount(rootfs: str, bundle: str, m: dict, new_cgroupns: bool, cgroup_dirs: dict[str, str] | None) -> None:
    typ = m.get("type") or ""
    src = m.get("source") or ""
    flags, prop, data = parse_options(m.get("options"))
    if typ == "bind":
        flags |= L.MS_BIND
    dest_name = m["destination"]
    src_st = None
    if flags & L.MS_BIND:
        if not os.path.isabs(src):
            src = os.path.join(bundle, src)
        src_st = os.stat(src)
        fd = open_destination(rootfs, dest_name, directory=stat.S_ISDIR(src_st.st_mode))
    else:
        try:
            fd = open_destination(rootfs, dest_name, directory=True)
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, f"mount destination {dest_name} is not a directory") from None
        except OSError as e:
            if e.errno != errno.ENOTDIR:
                raise
            raise OSError(errno.ENOTDIR, f"mount destination {dest_name} is not a directory") from None
    under = os.fstat(fd)
    try:
        dest = fd_target(fd)
        if flags & L.MS_BIND:
            L.mount(src, dest, None, L.MS_BIND | (flags & L.MS_REC))
        elif typ == "cgroup":
            _cgroup_mount(dest, flags, new_cgroupns, cgroup_dirs,
                          lambda: reopen_mounted(rootfs, dest_name, under, None))
        else:
            try:
                L.mount(src or typ, dest, typ or None, flags, data or None)
            except OSError as e:
                if typ != "sysfs" or e.errno != errno.EPERM:
                    raise
                # sysfs cannot be mounted without owning the network namespace: bind the host's
                flags |= L.MS_BIND | L.MS_REC
                src_st = os.stat("/sys")
                L.mount("/sys", dest, None, L.MS_BIND | L.MS_REC)
    finally:
        os.close(fd)
    extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
    if not ((flags & L.MS_BIND and extra) or prop):
        return
    # Remounts and propagation act on the mount itself: the destination reopened, now its root.
    fd = reopen_mounted(rootfs, dest_name, under, src_st if flags & L.MS_BIND else None)
    try:
        dest = fd_target(fd)
        if flags & L.MS_BIND and extra:
            L.mount(src, dest, None, extra | L.MS_BIND | L.MS_REMOUNT | (_mnt_flags_of(dest) & ~L.MS_RDONLY))
        for p in prop:
            L.mount(None, dest, None, p)
    finally:
        os.close(fd)


def make_device(rootfs: str, dev: dict, userns: bool) -> None:
    path = secure_join(rootfs, dev["path"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    typ = dev.get("type", "c")
    if userns:  # mknod is refused in a user namespace: bind the host's node
        _touch(path)
        L.mount(dev["path"], path, None, L.MS_BIND)
        return
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[typ]
    mode = dev.get("fileMode", 0o666) & 0o7777
    os.mknod(path, kind | mode, os.makedev(dev.get("major", 0), dev.get("minor", 0)) if typ != "p" else 0)
    os.chmod(path, mode)
    if dev.get("uid") is not None or dev.get("gid") is not None:
        os.chown(path, dev.get("uid") or 0, dev.get("gid") or 0)


def setup_dev(rootfs: str, devices: list[dict], userns: bool, default_dev: bool) -> None:
    if default_dev:
        for name, major, minor in DEFAULT_DEVICES:
            make_device(rootfs, {"path": "/dev/" + name, "type": "c", "major": major, "minor": minor,
                                 "fileMode": 0o666, "uid": 0, "gid": 0}, userns)
        for target, name in DEV_SYMLINKS:
            p = os.path.join(rootfs, "dev", name)
            if not os.path.lexists(p):
                os.symlink(target, p)
        if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(rootfs, "dev/core")):
            os.symlink("/proc/kcore", os.path.join(rootfs, "dev/core"))
        ptmx = os.path.join(rootfs, "dev/ptmx")
        if os.path.isdir(os.path.join(rootfs, "dev/pts")):
            if os.path.lexists(ptmx):
                os.unlink(ptmx)
            os.symlink("pts/ptmx", ptmx)
    for d in devices:
        make_device(rootfs, d, userns)


def prepare(cfg: dict, bundle: str, rootfs: str, ns_new: set[str], before_cgroup_mount=None,
            cgroup_dirs: dict[str, str] | None = None) -> None:
    """Everything before pivot_root, in the container's mount namespace."""
    linux = cfg.get("linux") or {}
    prop = PROPAGATION.get(linux.get("rootfsPropagation") or "rprivate", L.MS_PRIVATE | L.MS_REC)
    L.mount(None, "/", None, prop | L.MS_REC)
    if prop & L.MS_SHARED:
        # pivot_root refuses shared mounts as new root, its parent and put_old; and a bind made
        # under a shared parent would propagate to the host: private first, shared again once
        # pivoted (finish_propagation)
        L.mount(None, _mountpoint_of(os.path.dirname(rootfs)), None, L.MS_PRIVATE)
    ann = cfg.get("annotations") or {}
    lower = ann.get("org.berth.rootfs.lowerdirs")
    if lower:
        opts = f"lowerdir={lower}"
        if ann.get("org.berth.rootfs.upperdir"):
            opts += f",upperdir={ann['org.berth.rootfs.upperdir']},workdir={ann['org.berth.rootfs.workdir']}"
        L.mount("overlay", rootfs, "overlay", 0, opts)
    else:
        L.mount(rootfs, rootfs, None, L.MS_BIND | L.MS_REC)
    if prop & L.MS_SHARED:
        L.mount(None, rootfs, None, L.MS_PRIVATE)
    mounts = cfg.get("mounts") or []
    cgroupns = "cgroup" in ns_new
    nofollow = set(jsonfast.loads(ann.get(NOFOLLOW_SOURCES) or "[]"))
    for m in mounts:
        if m.get("type") == "cgroup" and before_cgroup_mount is not None:
            before_cgroup_mount()
        do_mount(rootfs, bundle, m, cgroupns, cgroup_dirs, nofollow_source=m.get("destination") in nofollow)
    dev_bound = any(os.path.normpath(m["destination"]) == "/dev" and ("bind" in (m.get("options") or []) or m.get("type") == "bind")
                    for m in mounts)
    default_dev = not dev_bound and any(os.path.normpath(m["destination"]) == "/dev" for m in mounts)
    setup_dev(rootfs, linux.get("devices") or [], "user" in ns_new, default_dev)


def _mountpoint_of(path: str) -> str:
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    return best


def pivot(rootfs: str) -> None:
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    newroot = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(newroot)
        L.pivot_root(".", ".")
        os.fchdir(oldroot)  # the old root is stacked under the new one: detach it
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(oldroot)
        os.close(newroot)


def finish_propagation(cfg: dict) -> None:
    """After pivot_root: give / the propagation the config asked for (shared needed the detour)."""
    want = (cfg.get("linux") or {}).get("rootfsPropagation")
    if want in ("shared", "rshared"):
        L.mount(None, "/", None, PROPAGATION[want])


def mask_paths(paths: list[str]) -> None:
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                L.mount("tmpfs", p, "tmpfs", L.MS_RDONLY)
            else:
                L.mount("/dev/null", p, None, L.MS_BIND)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def readonly_paths(paths: list[str]) -> None:
    for p in paths:
        try:
            L.mount(p, p, None, L.MS_BIND | L.MS_REC)
            L.mount(p, p, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | _mnt_flags_of(p))
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise


def readonly_root() -> None:
    L.mount("/", "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _mnt_flags_of("/"))
