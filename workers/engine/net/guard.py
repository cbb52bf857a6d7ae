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


def ensure() -> None:
    """Install (or replace) the guard table."""
    have = subprocess.run(["nft", "list", "table", "ip", TABLE], capture_output=True, text=True)
    if have.returncode == 0 and "127.0.0.0/8 drop" in have.stdout:
        return
    script = (f"table ip {TABLE}\ndelete table ip {TABLE}\n" if have.returncode == 0 else "") + RULESET
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"cannot install the loopback guard rule: {proc.stderr.strip()[:300]}")
