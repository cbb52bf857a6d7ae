"""Errors of the container manager: each message is one readable line meant for users.

Every error carries a stable `code` (snake_case, the same vocabulary as the API's error codes) and, where
one input is to blame, the `field` of the container spec it is about (workers/engine/containers/spec.py).
A failed job stores both, so the API and the dashboard place a host's refusal at its field."""

from __future__ import annotations


class ContainerError(Exception):
    """Base of every container-manager error."""

    code = "container_error"
    field: str | None = None


class NoSuchContainer(ContainerError):
    code = "no_such_container"


class NameTaken(ContainerError):
    code = "name_taken"
    field = "name"


class NoSuchImage(ContainerError):
    code = "no_such_image"
    field = "image"


class InvalidConfig(ContainerError):
    """A create argument was refused; `field` names it ("memory", "mounts", ...). `code` is "invalid", or
    "not_supported" for a spec field the engine declares but does not apply yet."""

    code = "invalid"

    def __init__(self, field: str, message: str, code: str | None = None) -> None:
        self.field = field
        if code:
            self.code = code
        super().__init__(message)


class InvalidState(ContainerError):
    """The operation does not fit the container's state (start of a running one, ...)."""

    code = "conflict"


class WaitTimeout(ContainerError):
    """wait(timeout=...) ran out before the container exited."""

    code = "timeout"
