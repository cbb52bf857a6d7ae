"""Persistent network namespaces: a namespace bind-mounted on a file under the state root, made before the
container so netavark can configure it and the runtime joins it by path (config.json linux.namespaces)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from workers.engine.runtime import linux as L


def is_mounted(path: Path) -> bool:
    """True when something (the namespace) is mounted on `path`, not the bare file left after a reboot: the
    mounted nsfs file is on another device than its directory (two stats, not a read of mountinfo)."""
    try:
        return os.lstat(path).st_dev != os.lstat(path.parent).st_dev
    except OSError:
        return False


def create(path: Path, links: tuple[str, ...] = ()) -> None:
    """A new network namespace with `lo` up, kept alive by a bind mount on `path` (made if missing);
    `links`: names of links to make in it (see stand_in): each one end of a veth pair whose other end is
    in there too (veth is in every kernel that runs containers; the dummy driver is not).

    IPv6 is off on every interface made in it or moved into it later (`lo` keeps ::1): Berth's networks are
    IPv4 only (net/__init__.py). An eth0 with IPv6 sends its multicast listener reports, duplicate address
    probes and router solicitations into the bridge, which floods each to every container of the network
    (a thousand copies, each one received and dropped in a container's namespace: with 950 running, a start
    took 18 ms longer with it, bench/README.md's seventh pass), and it would take router advertisements a
    neighbour forges, as CVE-2020-13401 did to Docker's containers.

    Made by a short-lived thread (a network namespace is per thread): unshare, lo up, bind-mount its
    /proc/thread-self/ns/net, exit. No fork of the (large) worker process: that cost 30+ ms per start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_mounted(path):
        return
    path.touch(mode=0o600, exist_ok=True)
    failure: list[BaseException] = []

    def make() -> None:
        try:
            L.unshare(L.CLONE_NEWNET)
            L.loopback_up()
            ipv6_off("default")  # this thread's namespace: /proc/sys/net is the opener's
            for i, name in enumerate(links):  # a child forked by this thread is in its namespace
                subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"standin{i}"],
                               check=True, capture_output=True)
            L.mount("/proc/thread-self/ns/net", str(path), None, L.MS_BIND)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            failure.append(e)

    thread = threading.Thread(target=make, name="berth-netns", daemon=True)
    thread.start()
    thread.join()  # the thread is gone: its namespace lives on through the mount only
    if failure:
        raise OSError(errno.EIO, f"cannot make a network namespace at {path}: {failure[0]}")


def ipv6_off(iface: str) -> None:
    """IPv6 off on `iface` of the calling thread's network namespace ("default": on the interfaces to come);
    nothing on a kernel without IPv6."""
    try:
        fd = os.open(f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6", os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Unmount and delete; the namespace goes when its last user (a process, another mount) is gone."""
    unmount(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def unmount(path: Path) -> None:
    """The bind mount off `path` (the file stays); the namespace lives on while a process is in it."""
    while is_mounted(path):
        try:
            L.umount2(str(path), L.MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the namespace mounted on `path`: it names the namespace while it exists."""
    if not is_mounted(path):
        return None
    st = os.stat(path)
    return st.st_dev, st.st_ino


def bind(path: Path, ns_fd: int, ident: tuple[int, int]) -> bool:
    """Mount the namespace `ns_fd` refers to on `path` again, if it is the one `identity` gave `ident` (a
    process's namespace, opened through /proc, may be another's by the time it is used: the fd pins what it
    refers to, and that is what is checked and mounted). False, and nothing mounted, otherwise."""
    st = os.fstat(ns_fd)
    if (st.st_dev, st.st_ino) != tuple(ident):
        return False
    path.touch(mode=0o600, exist_ok=True)
    if not is_mounted(path):
        L.mount(f"/proc/self/fd/{ns_fd}", str(path), None, L.MS_BIND)
    return True


@contextlib.contextmanager
def stand_in(path: Path, ifaces: list[str]) -> Iterator[Path]:
    """A namespace at `path` holding a link named as each of `ifaces`, for the time of a netavark teardown
    of a container whose own namespace is gone (a reboot, a state root unmounted under a crashed worker).
    netavark's teardown first deletes the container's interface in the namespace it is given, and only if
    that works checks whether the bridge has ports left and, if none, removes the bridge and the network's
    chains: without a namespace to find the interface in, a network's rules would stay for ever."""
    remove(path)  # one an interrupted teardown left would lack these links
    create(path, tuple(ifaces))
    try:
        yield path
    finally:
        remove(path)
