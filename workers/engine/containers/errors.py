"""Errors of the container manager: each message is one readable line meant for users."""

from __future__ import annotations


class ContainerError(Exception):
    """Base of every container-manager error."""


class NoSuchContainer(ContainerError):
    pass


class NameTaken(ContainerError):
    pass


class NoSuchImage(ContainerError):
    pass


class InvalidConfig(ContainerError):
    """A create argument was refused; `field` names it ("memory", "mounts", ...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class InvalidState(ContainerError):
    """The operation does not fit the container's state (start of a running one, ...)."""


class WaitTimeout(ContainerError):
    """wait(timeout=...) ran out before the container exited."""
