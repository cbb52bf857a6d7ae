"""Containers of one host: create from an image, run under the monitor, supervise, remove."""

from .errors import (  # noqa: E402
    ContainerError,
    InvalidConfig,
    InvalidState,
    NameTaken,
    NoSuchContainer,
    NoSuchImage,
    WaitTimeout,
)


def __getattr__(name: str):
    # lazy: the monitor imports the runtime seam (containers.oci) without the manager's image stack
    if name == "ContainerManager":
        from .manager import ContainerManager

        return ContainerManager
    raise AttributeError(name)


__all__ = ["ContainerError", "ContainerManager", "InvalidConfig", "InvalidState", "NameTaken", "NoSuchContainer",
           "NoSuchImage", "WaitTimeout"]
