"""workers/job_errors.describe: what a failed job says, for each kind of exception a handler may raise."""

from __future__ import annotations

import errno
import re

import pytest

from workers import job_errors
from workers.engine.containers.errors import InvalidConfig
from workers.engine.images.errors import CorruptArchive

EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback|\[Errno")


@pytest.mark.parametrize("exc,expected", [
    (CorruptArchive("entry 0 must be a JSON object, not a string", "manifest.json"),
     "manifest.json: entry 0 must be a JSON object, not a string"),
    (InvalidConfig("memory", "memory limit 1 MiB is below the minimum of 6 MiB"),
     "memory limit 1 MiB is below the minimum of 6 MiB"),
    (OSError(errno.ENOSPC, "No space left on device", "/var/lib/berth/images/tmp/x"),
     "the host could not finish this image.load job: the host ran out of disk space"),
    (PermissionError(errno.EACCES, "Permission denied", "/secret"),
     "the host could not finish this image.load job: permission denied"),
    (AttributeError("'str' object has no attribute 'get'"),
     "the host hit an unexpected problem while running this image.load job; it is a bug in Berth, and the "
     "worker's log on that host has the details"),
    (IndexError("list index out of range"), "the host hit an unexpected problem while running this image.load "
                                            "job; it is a bug in Berth, and the worker's log on that host has the "
                                            "details"),
    (MemoryError(), "the host ran out of memory while running this image.load job"),
])
def test_describe(exc, expected):
    text = job_errors.describe(exc, "image.load")
    assert text == expected
    assert not EXCEPTION_NAME.search(text)
    assert "/var/lib/berth" not in text and "/secret" not in text  # host paths stay in the log
