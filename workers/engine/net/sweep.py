"""What a network leaves on the machine when its containers' teardowns could not all run, and its removal.

netavark removes a network's bridge, its NETAVARK-<hash> nat chains, its isolation rules and its forwarding
accepts only in a "complete teardown": the teardown of a container after which the bridge has no port left.
When a container's namespace vanished first (a reboot, a state root unmounted under a crashed worker, a
bridge deleted by hand), no such teardown comes and the rules stay for good; leftover bridges of another
host's default pool also make subnets look taken. Here such a network is torn down by netavark itself, for a
stand-in container: an empty bridge of the network's name (made if gone, as netavark refuses a teardown on a
missing bridge) and a namespace holding the stand-in's interface (netns.stand_in)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
from pathlib import Path

from . import antispoof, guard, netavark, netns
from .antispoof import bridge_ports
from .errors import NetworkError

STAND_IN_ID = "0" * 64  # no container has it: nothing of a real container's DNS entries matches it


def firewall_text() -> str:
    """The iptables rules of the filter and nat tables (one iptables-save per sweep, not per network)."""
    out = ""
    for table in ("filter", "nat"):
        out += subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
    return out


def left_on_host(net: dict, rules: str) -> bool:
    """Whether the machine holds anything of `net` outside a container: its bridge, a rule naming the bridge
    (an older Berth's isolation rules) or its own nat chain. Not a rule naming only its subnet: another host's
    network may have the same one (asked for with overlap_routes), and its rules are not ours."""
    if os.path.exists(f"/sys/class/net/{net['bridge']}"):
        return True
    mine = netavark.chain(netavark.vark_name(net))
    return any(f" {net['bridge']} " in f"{ln} " or f" {mine} " in f"{ln} " or ln.startswith(f":{mine} ")
               for ln in rules.splitlines())


def tear_down(net: dict, run_dir: Path, stand_in: Path) -> bool:
    """netavark's complete teardown of `net`, unless a container is still on its bridge; whether it ran.
    The caller holds the host's network lock (no setup of this network can run meanwhile)."""
    if bridge_ports(net["bridge"]):
        return False
    if not os.path.exists(f"/sys/class/net/{net['bridge']}"):
        subprocess.run(["ip", "link", "add", "name", net["bridge"], "type", "bridge"], capture_output=True)
    last = ipaddress.ip_network(net["subnet"]).broadcast_address - 1
    # isolate: the rules an older Berth had netavark make go too (none there is no error)
    att = {"ip": str(last), "interface": "eth0", "aliases": [], "vark": netavark.vark_name(net), "isolate": True}
    opts = netavark.options(STAND_IN_ID, "berth-sweep", net, att, [])
    with contextlib.suppress(NetworkError, OSError), netns.stand_in(stand_in, ["eth0"]) as ns:
        netavark.run("teardown", run_dir, ns, opts)
    if os.path.exists(f"/sys/class/net/{net['bridge']}") and not bridge_ports(net["bridge"]):
        subprocess.run(["ip", "link", "del", net["bridge"]], capture_output=True)  # netavark failed: at least this
    _forget_names(run_dir / "aardvark-dns", att["vark"])
    _drop_port_chain(netavark.chain(att["vark"]).replace("NETAVARK-", "NETAVARK-DN-", 1))
    guard.forget(net["bridge"])
    antispoof.forget_dead()
    return True


def _drop_port_chain(chain: str) -> None:
    """The network's published ports whose containers' teardown never ran: netavark removes a DNAT rule only
    in that container's teardown, by its exact text, and keeps its NETAVARK-DN chain while rules are left.
    Such a rule would send the host port to an address that is gone (or to the next container given it)."""
    listed = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "NETAVARK-HOSTPORT-DNAT"], capture_output=True,
                            text=True).stdout
    for rule in listed.splitlines():
        if rule.startswith("-A ") and rule.split()[-1] == chain:
            subprocess.run(["iptables", "-w", "-t", "nat", "-D", *shlex.split(rule)[1:]], capture_output=True)
    if subprocess.run(["iptables", "-w", "-t", "nat", "-F", chain], capture_output=True).returncode == 0:
        subprocess.run(["iptables", "-w", "-t", "nat", "-X", chain], capture_output=True)


def _forget_names(dns_dir: Path, vark: str) -> None:
    """The network's DNS records (aardvark-dns's file of it) still hold the names of containers whose teardown
    never ran: dropped, and aardvark-dns told to reload, as netavark does (it exits once it serves nothing)."""
    try:
        (dns_dir / vark).unlink()
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((dns_dir / "aardvark.pid").read_text().strip()), signal.SIGHUP)
