"""/etc/hosts, /etc/hostname and /etc/resolv.conf of a container: written on the host under the state root
and bind-mounted into the container (as Docker does), rewritten in place so the mounts see changes."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

HOST_RESOLV = Path("/etc/resolv.conf")


def host_resolvers(path: Path = HOST_RESOLV) -> tuple[list[str], list[str]]:
    """The host's nameservers that a container can reach (not loopback ones) and its search domains."""
    servers, search = [], []
    try:
        text = path.read_text()
    except OSError:
        return [], []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if not ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    servers.append(parts[1])
            except ValueError:
                continue
        elif parts and parts[0] == "search":
            search = parts[1:]
    return servers, search


def hosts_text(hostname: str, names: list[str], ip: str | None, extra_hosts: list[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if ip:
        lines.append(f"{ip}\t{' '.join(dict.fromkeys([hostname, *names]))}")
    else:
        lines.append(f"127.0.1.1\t{hostname}")
    for entry in extra_hosts:
        name, _, addr = entry.partition(":")
        lines.append(f"{addr.strip('[]')}\t{name}")
    return "\n".join(lines) + "\n"


def resolv_text(servers: list[str], search: list[str]) -> str:
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Rewrite without replacing the inode: a bind mount of the file keeps showing it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
