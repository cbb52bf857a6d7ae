"""How many containers one network's bridge takes: a Linux bridge has at most 1023 ports (BR_MAX_PORTS is
1024 and port 0 is reserved: net/bridge/br_if.c), one per running container of the network. The kernel
refuses the 1024th with EXFULL ("Exchange full"), which netavark would pass on as a netlink error; Berth
refuses that start first, saying why and what to do (Docker and Podman pass the kernel's error on)."""

from __future__ import annotations

from .errors import NetworkError

BRIDGE_MAX_PORTS = 1023


class NetworkFull(NetworkError):
    code = "network_full"
    field = "networks"


def check(network: str, bridge_ports: set[str]) -> None:
    """Refuse one more container on `network` when its bridge has every port it can take."""
    if len(bridge_ports) >= BRIDGE_MAX_PORTS:
        raise NetworkFull(f"network {network} has {len(bridge_ports)} running containers, as many as a Linux "
                          f"bridge takes ({BRIDGE_MAX_PORTS}): start this container on another network")
