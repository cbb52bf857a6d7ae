"""Errors of the native runtime: one-line messages, mapped to a non-zero CLI exit."""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base class; `str(err)` is the one line the CLI prints."""


class ContainerNotFound(RuntimeError_):
    pass


class ContainerExists(RuntimeError_):
    pass


class InvalidBundle(RuntimeError_):
    pass


class InvalidState(RuntimeError_):
    pass
