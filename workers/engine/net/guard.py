"""Host rules netavark does not make, in one nft table for every bridge of Berth (interface names bth*):

- packets from a container bridge to 127.0.0.0/8 are dropped. netavark sets route_localnet on its bridges
  (published ports on 127.0.0.1 need it), which would let a container with CAP_NET_RAW hand-craft a frame to
  127.0.0.1 and reach the host's loopback services (the control plane's Redis, its web server):
  CVE-2020-8558's pattern, closed the way Docker and kube-proxy do.
- networks are kept apart: a packet routed from one Berth bridge to another is dropped, unless the host's
  port DNAT sent it there (a published port is reachable from other networks, as from the host). Traffic
  within one bridge passes (set `within`: one "bthX" . "bthX" element per bridge, for hosts where
  br_netfilter hands bridged packets to the forward hook).

The isolation was netavark's (`isolate` option) until it was measured: its per-network isolation chains
cost 8 iptables processes in every setup, and netavark 1.4 deletes its one FORWARD jump to them whenever
any isolated network is fully torn down (every network then reached every other until the next setup).
Here it is one rule made once, and an element added in the same nft call as the anti-spoofing entries."""

from __future__ import annotations

import subprocess

from .errors import NetworkError
from .store import BRIDGE_PREFIX

TABLE = "berth_guard"
RULESET = f"""
table ip {TABLE} {{
  set within {{ type ifname . ifname; }}
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    iifname "{BRIDGE_PREFIX}*" ip daddr 127.0.0.0/8 drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "{BRIDGE_PREFIX}*" oifname "{BRIDGE_PREFIX}*" ct status dnat accept
    iifname "{BRIDGE_PREFIX}*" oifname "{BRIDGE_PREFIX}*" iifname . oifname != @within drop
  }}
}}
"""
CURRENT = "!= @within drop"  # what a table of this version holds (an older one is replaced)

_ready = False  # installed (checked once per process)


def ensure() -> None:
    """Install (or replace an older version of) the guard table."""
    global _ready
    if _ready:
        return
    have = subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)
    if have.returncode == 0 and CURRENT in have.stdout:
        _ready = True
        return
    script = (f"table ip {TABLE}\ndelete table ip {TABLE}\n" if have.returncode == 0 else "") + RULESET
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0 and "File exists" not in proc.stderr:  # another process made it meanwhile
        raise NetworkError(f"cannot install the network guard rules: {proc.stderr.strip()[:300]}")
    _ready = True


def recheck() -> None:
    """Look at the table again at the next ensure (an nft call that used it failed)."""
    global _ready
    _ready = False


def within(bridge: str) -> str:
    """The nft line that lets traffic stay within `bridge` (idempotent: `add` of an element present is no
    error); for the caller's one nft call."""
    return f'add element ip {TABLE} within {{ "{bridge}" . "{bridge}" }}\n'


def forget(bridge: str) -> None:
    """The bridge is gone: its element too (a later bridge never has its name: names come from network ids)."""
    subprocess.run(["nft", "-f", "-"], input=f'delete element ip {TABLE} within {{ "{bridge}" . "{bridge}" }}\n',
                   capture_output=True, text=True)
