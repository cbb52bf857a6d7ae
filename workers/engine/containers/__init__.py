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
from .manager import ContainerManager  # noqa: E402

__all__ = ["ContainerError", "ContainerManager", "InvalidConfig", "InvalidState", "NameTaken", "NoSuchContainer",
           "NoSuchImage", "WaitTimeout"]
