"""Host tools the tests compare against (runc, crun, …): found on PATH or in the sbin directories (a
non-root PATH often lacks them), never assumed at one path. `make apt` installs them (APT_PACKAGES); a
test whose tool is missing is skipped with the reason printed (`pytest -rs`), not failed."""

from __future__ import annotations

import shutil

import pytest

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def host_tool(name: str) -> str:
    """The path of `name`, or skip the calling test saying that it is missing and how to install it."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed (`make apt` installs it: APT_PACKAGES in the Makefile)")
    return path


# Debian's chromium (`make apt`), the one browser the tests drive; Playwright never downloads its own.
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium() -> str:
    """The path of Debian's chromium, or skip the calling test saying that it is missing."""
    for name in CHROMIUM_NAMES:
        path = find_tool(name)
        if path is not None:
            return path
    pytest.skip("chromium is not installed (`make apt` installs it: APT_PACKAGES in the Makefile)")
