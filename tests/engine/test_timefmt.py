"""workers/engine/timefmt.rfc3339: the engine's one RFC 3339 formatter, at each precision its callers use."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from workers.engine.timefmt import rfc3339


def test_fixed_instants_at_each_precision():
    t = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z
    assert rfc3339(t) == "2023-11-14T22:13:20Z"  # runc-style log lines, busybox image mtime
    assert rfc3339(t, digits=6) == "2023-11-14T22:13:20.250000Z"  # image config `created`
    assert rfc3339(t, digits=9) == "2023-11-14T22:13:20.250000000Z"  # OCI state `created`, as runc
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


def test_now_parses_back_as_utc():
    text = rfc3339(digits=9)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", text)
    parsed = datetime.strptime(text[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 3600  # parsed as UTC, it is now
