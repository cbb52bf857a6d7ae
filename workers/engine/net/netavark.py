"""netavark, Podman's network stack, driven through its JSON interface: `netavark --config <dir> setup
<netns> < options` (and teardown). It makes the bridge, the veth pair, the addresses and routes, the
iptables rules (masquerade, isolation, published ports) and runs aardvark-dns for name resolution on
networks with DNS. IPAM stays ours: netavark is always given the address (static_ips).

One call per network, as `podman network connect` does, so connecting and disconnecting a running
container is the same operation as starting one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from .errors import NetworkError

CANDIDATES = ("/usr/lib/podman/netavark", "/usr/libexec/podman/netavark")
AARDVARK = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns")


def _find(cands: tuple[str, ...], name: str) -> str | None:
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    return shutil.which(name)


def binary() -> str:
    found = _find(CANDIDATES, "netavark")
    if not found:
        raise NetworkError("netavark is not installed on this host (Debian package netavark)")
    return found


def vark_name(net: dict, att: dict | None = None) -> str:
    """The name netavark knows a network by. netavark names the network's iptables chains from a hash of
    it, so it must be unique on the machine, not only in one state root: two hosts on one machine each
    with a `bridge` network shared one chain, and one host's last teardown deleted it under the other's
    containers. An attachment keeps the name it was set up with, for its teardown."""
    if att is not None and att.get("vark"):
        return att["vark"]
    if att is not None and att.get("mac"):
        return net["name"]  # set up by a Berth that gave netavark the network's own name
    return f"berth-{net['id'][:12]}"


def chain(vark: str) -> str:
    """netavark's nat chain of a network it knows as `vark` (its port-forwarding twin is NETAVARK-DN-<same>):
    the first 13 hex digits, upper case, of the SHA-512 of the name (core_utils::create_network_hash)."""
    return "NETAVARK-" + hashlib.sha512(vark.encode()).hexdigest().upper()[:13]


def network_info(net: dict, name: str, isolate: bool = False) -> dict:
    """netavark's description of one of our network records. Isolation between networks is Berth's own
    (guard.py): netavark's `isolate` only for the teardown of what an older Berth set up with it."""
    return {"name": name, "id": net["id"], "driver": "bridge", "network_interface": net["bridge"],
            "subnets": [{"subnet": net["subnet"], "gateway": net["gateway"]}], "ipv6_enabled": False,
            "internal": net["internal"], "dns_enabled": net["dns"], "ipam_options": {"driver": "host-local"},
            "options": {"isolate": "true" if isolate else "false"}}


def options(cid: str, name: str, net: dict, att: dict, ports: list[dict]) -> dict:
    """setup/teardown input for one attachment. `att["isolate"]` is how it was set up; absent: by an older
    Berth, which gave netavark isolate=true and always a port list, whose rules its teardown must remove.

    No `port_mappings` key without ports, as podman does: an empty list makes netavark create (and at
    teardown list and delete) an empty NETAVARK-DN-<hash> chain, three iptables processes for nothing."""
    vark = vark_name(net, att)
    legacy = att.get("isolate", True)
    opts = {"container_id": cid, "container_name": name,
            "networks": {vark: {"static_ips": [att["ip"]], "aliases": list(att.get("aliases") or []),
                                "interface_name": att["interface"]}},
            "network_info": {vark: network_info(net, vark, legacy)}}
    if ports or legacy:
        opts["port_mappings"] = [{"host_ip": p["host_ip"], "container_port": p["container_port"],
                                  "host_port": p["host_port"], "range": 1, "protocol": p["protocol"]} for p in ports]
    return opts


def run(verb: str, config_dir: Path, netns: Path, opts: dict) -> dict:
    """`netavark setup|teardown`; its JSON answer (setup: the interfaces it made)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary(), "--config", str(config_dir)]
    aardvark = _find(AARDVARK, "aardvark-dns")
    if aardvark:
        cmd += ["--aardvark-binary", aardvark]
    proc = subprocess.run([*cmd, verb, str(netns)], input=json.dumps(opts), capture_output=True, text=True,
                          timeout=60, env={**os.environ, "RUST_LOG": "error"})
    if proc.returncode != 0:
        raise NetworkError(f"network {verb} failed: {_message(proc.stdout, proc.stderr)}")
    try:
        return json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        return {}


def _message(out: str, err: str) -> str:
    try:
        return str(json.loads(out)["error"])
    except (ValueError, KeyError, TypeError):
        lines = [ln for ln in (err or out).splitlines() if ln.strip() and "syslog" not in ln]
        return " ".join(lines[-3:])[:500] or "no message"
