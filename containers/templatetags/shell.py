"""`shell` filter: an argv shown as a shell command line with its quoting, so it can be copied back."""

from __future__ import annotations

import shlex
from typing import Any

from django import template

register = template.Library()


@register.filter
def shell(argv: Any) -> str:
    """["sh", "-c", "echo hi"] -> sh -c 'echo hi'; a plain string is shown as it is; empty -> ""."""
    if isinstance(argv, str):
        return argv
    if not argv:
        return ""
    return shlex.join(str(a) for a in argv)
