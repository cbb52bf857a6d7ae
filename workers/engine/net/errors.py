"""Errors of the network layer: ContainerErrors (same `code` + `field` vocabulary), so every caller that
maps container errors maps these too."""

from __future__ import annotations

from workers.engine.containers.errors import ContainerError, InvalidConfig, InvalidState

__all__ = ["NetworkError", "NoSuchNetwork", "NetworkInUse", "PortTaken", "InvalidConfig", "InvalidState",
           "NetworkNameTaken"]


class NetworkError(ContainerError):
    """The data plane failed (netavark's own message is in it)."""

    code = "network_error"


class NoSuchNetwork(ContainerError):
    code = "no_such_network"
    field = "network"


class NetworkNameTaken(ContainerError):
    code = "name_taken"
    field = "name"


class NetworkInUse(ContainerError):
    code = "conflict"


class PortTaken(ContainerError):
    """A host port another program or container already holds."""

    code = "port_taken"
    field = "ports"
