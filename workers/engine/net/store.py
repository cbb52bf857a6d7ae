"""Networks of one host and their IPAM, under <state_root>/net/networks/<id>.json.

Every change holds one fcntl lock (<state_root>/net/net.lock), so two workers or CLI calls never hand out
the same address or name; a record is written atomically, so a crash leaves the old or the new one. An
address belongs to a container id in the network's `allocations` until released: it survives restarts
and is freed on remove (and by the reconcile pass for containers that are gone)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers.engine import flocks

from . import routes
from .errors import InvalidConfig, NetworkInUse, NetworkNameTaken, NoSuchNetwork

DEFAULT_NETWORK = "bridge"
RESERVED = {"none", "host", "default"}  # modes, not networks
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
BRIDGE_PREFIX = "bth"  # every bridge of Berth: bth + 10 hex digits of the network id (guard.py matches it)
POOL = ipaddress.ip_network("10.89.0.0/16")  # automatic subnets: /24s out of it, as podman does
# The default bridge holds every container not given a network, so a /24 (253 containers) is far too small
# for a busy host: a /20 (4,094) out of a pool apart from POOL and from podman's default 10.88.0.0/16.
DEFAULT_POOL, DEFAULT_PREFIX = ipaddress.ip_network("10.80.0.0/13"), 20


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# path -> (the record's bytes, their parse). A create looks networks up about seven times, and a network's
# record holds every address given out: parsing it each time grew a create by 8 ms at 1,000 containers
# (bench/scale.py). The bytes are read every time and compared, so another process's save is always seen
# (file metadata would not do: a replaced file may get the same inode, size and coarse mtime).
_records: dict[Path, tuple[bytes, dict]] = {}


def _parsed(path: Path) -> dict:
    """The record at `path`, a copy the caller may change (its dicts and lists are its own)."""
    raw = path.read_bytes()
    known = _records.get(path)
    if known is None or known[0] != raw:
        known = (raw, json.loads(raw))
        _records[path] = known
    return {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in known[1].items()}


def _forget_all_but(directory: Path, paths: list[Path]) -> None:
    keep = set(paths)
    for p in [p for p in _records if p.parent == directory and p not in keep]:
        del _records[p]


class NetworkStore:
    def __init__(self, state_root: str | os.PathLike[str]):
        self.base = Path(state_root) / "net"
        self.dir = self.base / "networks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._depth = 0

    # ---- locking and records ---------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The one lock of the host's network state (re-entrant within this object)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with flocks.held(self.base / "net.lock"):
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    def _path(self, nid: str) -> Path:
        return self.dir / f"{nid}.json"

    def save(self, rec: dict) -> None:
        tmp = self._path(rec["id"]).with_suffix(".tmp")
        # compact: with `indent` json encodes in Python, not C (6 ms a save with 1,000 allocations)
        tmp.write_text(json.dumps(rec, sort_keys=True, separators=(",", ":")))
        os.replace(tmp, self._path(rec["id"]))

    def all(self) -> list[dict]:
        out = []
        paths = sorted(self.dir.glob("*.json"))
        for p in paths:
            with contextlib.suppress(OSError, ValueError):
                out.append(_parsed(p))
        _forget_all_but(self.dir, paths)
        return sorted(out, key=lambda r: r["created"])

    def get(self, ref: str) -> dict:
        """By name, full id or an unambiguous id prefix."""
        nets = self.all()
        for rec in nets:
            if rec["name"] == ref or rec["id"] == ref:
                return rec
        found = [r for r in nets if len(ref) >= 3 and r["id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NoSuchNetwork(f"no such network '{ref}'")

    # ---- create / remove -------------------------------------------------------------------

    def create(self, name: str, *, subnet: str | None = None, gateway: str | None = None, internal: bool = False,
               labels: dict[str, str] | None = None, dns: bool = True, default_bridge: bool = False,
               overlap_routes: bool = False) -> dict:
        """default_bridge: a tenant's default network (every container of theirs given no network joins it),
        sized as the host's `bridge` when no subnet is given (see DEFAULT_PREFIX).
        A chosen subnet never overlaps a route of the host; a given one that does is refused (field subnet)
        unless `overlap_routes` (the user knows that route: a VPN's, a network reached another way)."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidConfig("name", f"invalid network name {name!r}: use letters, digits, '_', '.', '-'")
        if name in RESERVED:
            raise InvalidConfig("name", f"'{name}' is a network mode, not a name you can give a network")
        with self.locked():
            nets = self.all()
            if any(r["name"] == name for r in nets):
                raise NetworkNameTaken(f"a network named '{name}' already exists")
            taken = [ipaddress.ip_network(r["subnet"]) for r in nets]
            routed = routes.host_routes()
            if subnet is None:
                busy = taken + [r for r, _ in routed]
                net = self._default_subnet(busy) if default_bridge else self._subnet(None, busy)
            else:
                net = self._subnet(subnet, taken)
                clash = next(((r, dev) for r, dev in routed if net.overlaps(r)), None)
                if clash is not None and not overlap_routes:
                    raise InvalidConfig("subnet", f"subnet {net} overlaps the route to {clash[0]} (dev {clash[1]}) "
                                                  "on this host: choose another subnet, or ask for it anyway")
            gw = self._gateway(net, gateway)
            nid = secrets.token_hex(32)
            rec = {"id": nid, "name": name, "driver": "bridge", "subnet": str(net), "gateway": str(gw),
                   "internal": bool(internal), "dns": bool(dns), "labels": dict(labels or {}),
                   "created": _now(), "bridge": f"{BRIDGE_PREFIX}{nid[:10]}", "allocations": {}}
            if overlap_routes:
                rec["overlap_routes"] = True  # asked for: its start does not refuse such a route either
            self.save(rec)
            return rec

    @staticmethod
    def _subnet(subnet: str | None, taken: list, pool: ipaddress.IPv4Network = POOL,
                prefix: int = 24) -> ipaddress.IPv4Network:
        if subnet is None:
            # a random free one: several hosts (state roots) on one machine rarely pick the same one before
            # either has made its bridge (the host's addresses show only bridges already up)
            free = [c for c in pool.subnets(new_prefix=prefix) if not any(c.overlaps(t) for t in taken)]
            if not free:
                raise InvalidConfig("subnet", f"no free /{prefix} left in {pool}: give a subnet")
            return free[secrets.randbelow(len(free))]
        try:
            net = ipaddress.ip_network(subnet, strict=True)
        except ValueError as e:
            raise InvalidConfig("subnet", f"invalid subnet {subnet!r}: {e}") from None
        if net.version != 4:
            raise InvalidConfig("subnet", "only IPv4 subnets are supported yet")
        if net.prefixlen > 29 or net.prefixlen < 8:
            raise InvalidConfig("subnet", f"subnet {net}: use a prefix length from /8 to /29")
        if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
            raise InvalidConfig("subnet", f"subnet {net} is not usable for containers")
        clash = next((t for t in taken if net.overlaps(t)), None)
        if clash is not None:
            raise InvalidConfig("subnet", f"subnet {net} overlaps {clash}, already used on this host")
        return net

    def _default_subnet(self, taken: list) -> ipaddress.IPv4Network:
        """A /20 for a default bridge; a /24 of the ordinary pool once the /20s are all taken."""
        try:
            return self._subnet(None, taken, DEFAULT_POOL, DEFAULT_PREFIX)
        except InvalidConfig:
            return self._subnet(None, taken)

    @staticmethod
    def _gateway(net: ipaddress.IPv4Network, gateway: str | None) -> ipaddress.IPv4Address:
        if gateway is None:
            return net.network_address + 1
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidConfig("gateway", f"invalid gateway {gateway!r}") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidConfig("gateway", f"gateway {gw} is not a host address of {net}")
        return gw

    def ensure_default(self) -> dict:
        """The default `bridge` network (no DNS, as Docker's), made on first use."""
        with self.locked():
            try:
                return self.get(DEFAULT_NETWORK)
            except NoSuchNetwork:
                pass
            nets = self.all()
            taken = [ipaddress.ip_network(r["subnet"]) for r in nets] + [r for r, _ in routes.host_routes()]
            net = self._default_subnet(taken)
            nid = secrets.token_hex(32)
            rec = {"id": nid, "name": DEFAULT_NETWORK, "driver": "bridge", "subnet": str(net),
                   "gateway": str(net.network_address + 1), "internal": False, "dns": False, "labels": {},
                   "created": _now(), "bridge": f"{BRIDGE_PREFIX}{nid[:10]}", "allocations": {}}
            self.save(rec)
            return rec

    def delete(self, ref: str) -> dict:
        """Remove a network that no container holds an address in."""
        with self.locked():
            rec = self.get(ref)
            if rec["allocations"]:
                users = ", ".join(sorted(c[:12] for c in set(rec["allocations"].values())))
                raise NetworkInUse(f"network {rec['name']} is in use by container(s) {users}: disconnect them "
                                   "or remove it with force")
            self._path(rec["id"]).unlink(missing_ok=True)
            return rec

    # ---- IPAM --------------------------------------------------------------------------------

    def allocate(self, ref: str, cid: str, ip: str | None = None) -> tuple[dict, str]:
        """An address of network `ref` for container `cid` (the one it already has, if any)."""
        with self.locked():
            rec = self.get(ref)
            mine = [a for a, c in rec["allocations"].items() if c == cid]
            if mine:
                return rec, mine[0]
            net = ipaddress.ip_network(rec["subnet"])
            used = set(rec["allocations"]) | {rec["gateway"]}
            if ip is not None:
                try:
                    want = ipaddress.ip_address(ip)
                except ValueError:
                    raise InvalidConfig("ip", f"invalid address {ip!r}") from None
                if want not in net or want in (net.network_address, net.broadcast_address):
                    raise InvalidConfig("ip", f"{want} is not a host address of {rec['name']} ({net})")
                if str(want) in used:
                    raise InvalidConfig("ip", f"{want} is already in use on network {rec['name']}")
                addr = str(want)
            else:  # the lowest free host address, by integer (no address object per candidate)
                family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
                # inet_pton, not ipaddress.ip_address: 9 ms a create with 1,000 addresses given out (bench/scale.py)
                taken = {int.from_bytes(socket.inet_pton(family, a), "big") for a in used}
                first = int(net.network_address) + (1 if net.num_addresses > 2 else 0)
                last = int(net.broadcast_address) - (1 if net.num_addresses > 2 else 0)
                found = next((i for i in range(first, last + 1) if i not in taken), None)
                if found is None:
                    raise InvalidConfig("network", f"network {rec['name']} ({net}) has no free address left")
                addr = str(ipaddress.ip_address(found))
            rec["allocations"][addr] = cid
            self.save(rec)
            return rec, addr

    def release(self, ref: str, cid: str) -> None:
        with self.locked():
            try:
                rec = self.get(ref)
            except NoSuchNetwork:
                return
            left = {a: c for a, c in rec["allocations"].items() if c != cid}
            if left != rec["allocations"]:
                rec["allocations"] = left
                self.save(rec)

    def release_all_but(self, live: set[str]) -> list[tuple[str, str]]:
        """Free every address held by a container not in `live` (the reconcile pass); what was freed."""
        freed = []
        with self.locked():
            for rec in self.all():
                left = {a: c for a, c in rec["allocations"].items() if c in live}
                if left != rec["allocations"]:
                    freed += [(rec["name"], a) for a in rec["allocations"] if a not in left]
                    rec["allocations"] = left
                    self.save(rec)
        return freed

    def users(self, rec: dict[str, Any]) -> list[str]:
        return sorted(set(rec["allocations"].values()))
