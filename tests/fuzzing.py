"""How far the property-based tests explore.

`make test` must give the same answer on every run: a fixed amount of derandomized examples, a fixed
schemathesis seed, no wall-clock budget (a budget makes the amount depend on the machine's load).
`make fuzz` sets BERTH_FUZZ=1: fresh randomness and a longer run, to find what the fixed run does not;
BERTH_FUZZ_SEED replays a seed it printed, BERTH_FUZZ_SCALE multiplies its amounts.
"""

from __future__ import annotations

import os
import random

FUZZ = os.environ.get("BERTH_FUZZ", "") not in ("", "0")
FIXED_SEED = 1


def amount(fixed: int, fuzz: int) -> int:
    """`fixed` examples under `make test`; `fuzz` (times BERTH_FUZZ_SCALE) under `make fuzz`."""
    if not FUZZ:
        return fixed
    return max(1, int(fuzz * float(os.environ.get("BERTH_FUZZ_SCALE", "1"))))


def seed() -> int:
    """FIXED_SEED under `make test`; under `make fuzz` BERTH_FUZZ_SEED or a fresh one (print it to replay)."""
    if not FUZZ:
        return FIXED_SEED
    if os.environ.get("BERTH_FUZZ_SEED"):
        return int(os.environ["BERTH_FUZZ_SEED"])
    return random.SystemRandom().randrange(1, 2**31)
