"""Published ports: '[ip:][host_port:]container_port[/tcp|udp]' as docker -p.

netavark forwards with DNAT rules and holds no socket, so whether a host port is free is checked here by
binding it for a moment (another program listening on it: refused), and against the other containers'
mappings (they hold no socket either). A mapping without a host port gets a free one, chosen once at create
and kept, as Docker shows it in `port`."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

from workers.engine.containers.spec_values import PORT_RE

from .errors import InvalidConfig, PortTaken

DEFAULT_BIND = "127.0.0.1"


def parse(spec: str) -> dict:
    m = PORT_RE.match(spec)
    if not m:
        raise InvalidConfig("ports", f"invalid port {spec!r}: use [ip:][host_port:]port[/tcp|udp]")
    ip = (m.group(1) or DEFAULT_BIND).strip("[]")
    proto = m.group(4) or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidConfig("ports", f"port {spec!r}: only tcp and udp can be published")
    if ipaddress.ip_address(ip).version != 4:
        raise InvalidConfig("ports", f"port {spec!r}: only IPv4 addresses can be published yet")
    return {"host_ip": ip, "host_port": int(m.group(2)) if m.group(2) else 0,
            "container_port": int(m.group(3)), "protocol": proto}


def _sock(proto: str) -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)


def probe(host_ip: str, host_port: int, proto: str) -> int:
    """Bind (host_ip, host_port) once to see it is free; port 0: a free one. Returns the port."""
    s = _sock(proto)
    try:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are not users
        s.bind((host_ip, host_port))
        return s.getsockname()[1]
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise PortTaken(f"host port {host_ip}:{host_port}/{proto} is already in use on this host") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InvalidConfig("ports", f"{host_ip} is not an address of this host") from None
        raise InvalidConfig("ports", f"cannot publish on {host_ip}:{host_port}/{proto}: {e.strerror}") from None
    finally:
        s.close()


def _clash(a: dict, b: dict) -> bool:
    if a["protocol"] != b["protocol"] or a["host_port"] != b["host_port"]:
        return False
    return a["host_ip"] == b["host_ip"] or "0.0.0.0" in (a["host_ip"], b["host_ip"])


def resolve(specs: Iterable[str], others: list[dict]) -> list[dict]:
    """The mappings of a new container: host ports chosen and checked against the host and `others`
    (the mappings other containers keep)."""
    out: list[dict] = []
    for spec in specs:
        m = parse(spec)
        if m["host_port"] == 0:
            for _ in range(50):  # a random free port that no other container keeps either
                m["host_port"] = probe(m["host_ip"], 0, m["protocol"])
                if not any(_clash(m, o) for o in others + out):
                    break
        check([m], others + out)
        out.append(m)
    return out


def check(mappings: list[dict], others: list[dict]) -> None:
    """Every mapping free: not kept by another container, not bound by a program on the host."""
    for m in mappings:
        for o in others:
            if _clash(m, o):
                raise PortTaken(f"host port {m['host_ip']}:{m['host_port']}/{m['protocol']} is already "
                                f"published by container {o.get('container', '?')[:12]}")
        probe(m["host_ip"], m["host_port"], m["protocol"])


def describe(m: dict) -> str:
    return f"{m['container_port']}/{m['protocol']} -> {m['host_ip']}:{m['host_port']}"
