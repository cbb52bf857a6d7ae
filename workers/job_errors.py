"""The text a failed job shows: written for a person, never a Python exception's name or repr.

Expected failures (JobError, the engine's errors) carry a message meant for users and are shown as they
are; an OSError is told by what the system said; anything else is a bug on the host and says so, pointing
at the worker's log, where run_job wrote the traceback."""

from __future__ import annotations

import errno

from workers.engine.containers.errors import ContainerError
from workers.engine.images.errors import ImageError
from workers.engine.runtime.errors import RuntimeError_

MAX_ERROR_CHARS = 4000
# Engine errors: their messages are one readable line each (see their modules).
READABLE = (ImageError, ContainerError, RuntimeError_)

_OS_WORDS = {
    errno.ENOSPC: "the host ran out of disk space",
    errno.EDQUOT: "the host's disk quota is exhausted",
    errno.ENOMEM: "the host ran out of memory",
    errno.EROFS: "the host's disk is read-only",
    errno.EIO: "the host's disk reported an input/output error",
    errno.EMFILE: "the host has too many open files",
    errno.ENFILE: "the host has too many open files",
}


def code_and_field(exc: BaseException | None) -> tuple[str, str]:
    """The stable code and the spec/input field of a failed job's cause ("" when it names none). Engine errors
    and JobError carry them; an OSError is the host's trouble; anything else is a bug."""
    if exc is None:
        return "interrupted", ""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        code = ("engine_error" if isinstance(exc, READABLE) else
                "host_error" if isinstance(exc, (OSError, MemoryError)) else "internal_error")
    field = getattr(exc, "field", None)
    return code[:64], field[:64] if isinstance(field, str) else ""


def describe(exc: BaseException, kind: str = "", readable: tuple[type[BaseException], ...] = ()) -> str:
    """One paragraph for Job.error. `readable`: more exception types whose message is for users."""
    text = str(exc).strip()
    if isinstance(exc, (*readable, *READABLE)) and text:
        return text[:MAX_ERROR_CHARS]
    job = f"this {kind} job" if kind else "this job"
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = _OS_WORDS.get(exc.errno) or (exc.strerror or "a system call failed").rstrip(".").lower()
        return f"the host could not finish {job}: {reason}"[:MAX_ERROR_CHARS]
    if isinstance(exc, MemoryError):
        return f"the host ran out of memory while running {job}"
    return (f"the host hit an unexpected problem while running {job}; it is a bug in Berth, and the worker's "
            "log on that host has the details")
