"""The Debian base image: debootstrap --variant=minbase from the mirror apt uses, with extra packages on request
(`--include python3,redis-server`), optionally kept as a rootfs tarball in a cache keyed by everything that
decides its contents, so a second build on one machine takes seconds and a fresh machine still builds it."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..timefmt import rfc3339
from .errors import ImageError
from .store import Image, ImageStore
from .tarsafe import TarPolicy
from .tarwrite import TarWriter, walk_tree

DEBIAN_REF = "debian:bookworm-slim"
SUITE = "bookworm"
# Bump when what a build writes changes (options, skipped paths, the tar's form): it is part of the cache key.
BUILDER_VERSION = 1
CACHE_ENV = "BERTH_BASE_CACHE"
_SKIP = ("dev/", "proc/", "sys/", "run/", "tmp/", "var/cache/apt/archives/", "var/lib/apt/lists/")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")  # Debian policy 5.6.1


class BadPackageName(ImageError):
    code = "invalid"
    field = "include"


def packages(include: Iterable[str] | str | None) -> list[str]:
    """The extra packages, validated by Debian's rules for names, sorted and without repeats; a string is
    split on commas as debootstrap's --include is."""
    if isinstance(include, str):
        include = include.split(",")
    names = sorted({p.strip() for p in include or () if p.strip()})
    for name in names:
        if not _PACKAGE.fullmatch(name):
            raise BadPackageName(f"{name!r} is not a Debian package name")
    return names


def debian_ref(include: Iterable[str] | str | None = None) -> str:
    """`debian:bookworm-slim`, or for extra packages a tag naming them (`debian:bookworm_python3_redis-server`;
    `_` cannot be in a package name, so the tag is unambiguous) or, past a tag's length, their hash."""
    names = packages(include)
    if not names:
        return DEBIAN_REF
    tag = "_".join([SUITE, *names])
    if "+" in tag or len(tag) > 128:
        tag = f"{SUITE}-plus-{hashlib.sha256(','.join(names).encode()).hexdigest()[:16]}"
    return f"debian:{tag}"


def is_debian_base_ref(ref: str) -> bool:
    return ref == DEBIAN_REF or ref.startswith((f"debian:{SUITE}_", f"debian:{SUITE}-plus-"))


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 `URIs:` or one-line `deb` sources)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*")) + ["/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*(\S+)|deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+)", text, re.M):
            uri = m.group(1) or m.group(2)
            if "security" not in uri:
                return uri
    return "http://deb.debian.org/debian"


def cache_key(names: list[str], mirror: str, suite: str = SUITE) -> str:
    """Everything that decides a build's contents except the mirror's own changes over time."""
    version = subprocess.run(["debootstrap", "--version"], capture_output=True, text=True).stdout.strip()
    inputs = {"builder": BUILDER_VERSION, "debootstrap": version, "variant": "minbase", "suite": suite,
              "mirror": mirror, "include": names}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> str | None:
    return os.environ.get(CACHE_ENV) or None


def _build_rootfs_tar(tmp: str, out: str, names: list[str], mirror: str, suite: str) -> None:
    rootfs = os.path.join(tmp, "rootfs")
    cmd = ["debootstrap", "--variant=minbase"]
    if names:
        cmd.append("--include=" + ",".join(names))
    subprocess.run([*cmd, suite, rootfs, mirror], check=True, stdout=subprocess.DEVNULL)
    mtime = int(time.time())
    with open(out, "wb") as f:
        writer = TarWriter(f, mtime=mtime)
        for rel, node in walk_tree(rootfs):
            if not any(rel.startswith(s) for s in _SKIP):
                writer.add(rel, node)
        writer.close()
    os.utime(out, (mtime, mtime))  # the image's `created`, the same whenever the cached tar is imported


def _mounts_under(path: str) -> bool:
    real = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].startswith(real) for line in f)


def _remove_build_dir(path: str) -> None:
    """Remove a build directory unless something is still mounted in it (debootstrap mounts /proc and /sys
    into the target and may bind /dev: a builder killed mid-way leaves them, and removing through them
    would delete the host's files). Such a directory is left for a human, never walked."""
    if not _mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _build_dir(parent: str, prefix: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    finally:
        _remove_build_dir(path)


def _own_private_dir(path: str) -> str:
    """The cache holds tarballs imported with their setuid bits: only a directory of ours that nobody else
    may write is trusted."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ImageError(f"base image cache {path} must be a directory of uid {os.geteuid()} "
                         "that group and others cannot write")
    return path


def _cached_tar(cache_dir: str, names: list[str], mirror: str, suite: str) -> str:
    """The cached rootfs tar for these inputs, built now under a lock when missing (a second builder waits
    for the first instead of building it again); written whole then renamed, so a crash leaves no entry."""
    cache_dir = _own_private_dir(cache_dir)
    key = cache_key(names, mirror, suite)[:32]
    tar = os.path.join(cache_dir, f"debian-{key}.tar")
    with open(os.path.join(cache_dir, f"debian-{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(tar):
            for stale in glob.glob(os.path.join(cache_dir, f"build-{key}-*")):  # a builder killed mid-way
                _remove_build_dir(stale)  # (only the lock's holder builds this key)
            with _build_dir(cache_dir, f"build-{key}-") as tmp:
                part = os.path.join(tmp, "rootfs.tar")
                _build_rootfs_tar(tmp, part, names, mirror, suite)
                Path(tar + ".json").write_text(json.dumps({"suite": suite, "mirror": mirror, "include": names,
                                                           "builder": BUILDER_VERSION}) + "\n")
                os.rename(part, tar)
    return tar


def make_debian_image(store: ImageStore, ref: str | None = None, suite: str = SUITE,
                      include: Iterable[str] | str | None = None, cache_dir: str | None = None) -> Image:
    """debootstrap --variant=minbase (plus `include`) and import the result as one layer (minutes; needs the
    mirror). With `cache_dir` the rootfs tar is kept there by its inputs and imported from it next time."""
    if not shutil.which("debootstrap"):
        raise FileNotFoundError("debootstrap not found: install Debian's debootstrap package")
    names = packages(include)
    ref = ref or debian_ref(names)
    mirror = debian_mirror()
    # gc.lock shared for the whole build: gc empties store.tmp and must not walk debootstrap's mounts there.
    with store._lock("gc", shared=True), _build_dir(str(store.tmp), "debian-") as tmp:
        if cache_dir:
            tar = _cached_tar(cache_dir, names, mirror, suite)
        else:
            tar = os.path.join(tmp, "rootfs.tar")
            _build_rootfs_tar(tmp, tar, names, mirror, suite)
        what = f"debootstrap --variant=minbase{' --include=' + ','.join(names) if names else ''} {suite}"
        # Made here from Debian's own packages: its setuid binaries (su, passwd, mount) are expected.
        return store.import_tarball(tar, ref, changes=['CMD ["bash"]'], policy=TarPolicy(setuid="keep"),
                                    created=rfc3339(int(os.stat(tar).st_mtime)),
                                    history=f"berth base image: {what}")
