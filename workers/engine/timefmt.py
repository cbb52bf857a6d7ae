"""RFC 3339 timestamps in UTC with a 'Z', the one formatter of the engine (OCI state `created`, image
`created`, runc-style log lines). The monitor's log writer keeps its own per-second cache: it stamps
every line and strftime per line is a third of its cost."""

from __future__ import annotations

import time


def rfc3339(t: float | None = None, digits: int = 0) -> str:
    """`t` (seconds since the epoch; now if None) as 2006-01-02T15:04:05[.fraction]Z, with `digits`
    digits of fraction (0: none, 6: microseconds, 9: nanoseconds as runc writes `created`)."""
    if t is None:
        t = time.time()
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    if digits:
        out += f".{int((t % 1) * 10 ** digits):0{digits}d}"
    return out + "Z"
