"""A host rule netavark does not make: packets from a container bridge to 127.0.0.0/8 are dropped.

netavark sets route_localnet on its bridges (published ports on 127.0.0.1 need it), which would let a
container with CAP_NET_RAW hand-craft a frame to 127.0.0.1 and reach the host's loopback services (the
control plane's Redis, its web server): CVE-2020-8558's pattern, closed the way Docker and kube-proxy do.
One rule for every bridge of Berth (interface names bth*), made once, idempotent."""

from __future__ import annotations

import subprocess

from .errors import NetworkError
from .store import BRIDGE_PREFIX

TABLE = "berth_guard"
RULESET = f"""
table ip {TABLE} {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    iifname "{BRIDGE_PREFIX}*" ip daddr 127.0.0.0/8 drop
  }}
}}
"""


_ready = False  # installed (checked once per process)


def ensure() -> None:
    """Install (or replace) the guard table."""
    global _ready
    if _ready:
        return
    have = subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)
    if have.returncode == 0 and "127.0.0.0/8 drop" in have.stdout:
        _ready = True
        return
    script = (f"table ip {TABLE}\ndelete table ip {TABLE}\n" if have.returncode == 0 else "") + RULESET
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"cannot install the loopback guard rule: {proc.stderr.strip()[:300]}")
    _ready = True


def _forward_rules() -> list[str]:
    """The FORWARD chain's rules, in order (`iptables -S` lines)."""
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout.splitlines()
    return [r for r in rules if r.startswith("-A FORWARD")]


PUBLISHED = ["-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", "berth published ports",
             "-j", "ACCEPT"]


def ensure_published_forwarding() -> None:
    """Published ports reachable from containers on other networks, as the host is.

    netavark's isolation rules drop every packet between two bridges, including connections the host's own
    port DNAT sent there; such connections were asked for by publishing a port, so the first FORWARD rule
    accepts what was DNAT-ed (both directions). Plain traffic between networks still meets the isolation."""
    body = _forward_rules()
    if body and "berth published ports" in body[0]:
        return
    for r in body:
        if "berth published ports" in r:
            subprocess.run(["iptables", "-w", "-D", "FORWARD", *PUBLISHED], capture_output=True)
    proc = subprocess.run(["iptables", "-w", "-I", "FORWARD", "1", *PUBLISHED], capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"cannot install the published-ports forwarding rule: {proc.stderr.strip()[:300]}")


ISOLATION = ["-m", "comment", "--comment", "berth network isolation", "-j", "NETAVARK_ISOLATION_1"]
_isolation_ready = False  # Berth's own jump is in place (checked once per process: netavark never removes it)


def ensure_isolation() -> None:
    """Containers on different networks stay apart even while netavark's own isolation jump is missing.

    netavark 1.4 removes its one FORWARD jump to NETAVARK_ISOLATION_1 whenever any isolated network is fully
    torn down (its last container stops), and adds it back only at the next setup: in between, every network
    reached every other (measured: a container on network b fetched a's httpd page after a container on a
    third network c stopped). Berth keeps a jump of its own, which netavark never removes, right after the
    published-ports rule and before netavark's forwarding accepts."""
    global _isolation_ready
    if _isolation_ready:
        return
    body = _forward_rules()
    if not any("berth network isolation" in r for r in body):
        subprocess.run(["iptables", "-w", "-N", "NETAVARK_ISOLATION_1"], capture_output=True)  # may exist
        published = [i for i, r in enumerate(body) if "berth published ports" in r]
        at = str(published[0] + 2 if published else 1)  # after the published-ports accept, which goes first
        proc = subprocess.run(["iptables", "-w", "-I", "FORWARD", at, *ISOLATION], capture_output=True, text=True)
        if proc.returncode != 0:
            raise NetworkError(f"cannot install the network isolation rule: {proc.stderr.strip()[:300]}")
    _isolation_ready = True
