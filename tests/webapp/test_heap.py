"""webapp/heap.py: a process whose malloc keeps freed memory reuses a dropped buffer's pages instead of faulting
them in again (each of a transfer's 1-8 MiB buffers did; bench/move.py). Run in a fresh interpreter each: the
tuning is per process and the count is the process's own."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

PROBE = """
import resource, sys
from webapp import heap
if sys.argv[1] == "tuned":
    assert heap.keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def parts():  # a relay's writer: three 8 MiB parts alive at once, then dropped together
    held = [bytearray(8 << 20) for _ in range(3)]  # zeroed: every page is touched
    del held
parts()  # the heap grows once (its pages are faulted in here)
before = faults()
for _ in range(20):
    parts()
print(faults() - before)
"""


def faults_of(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_dropped_buffer_s_pages_are_reused() -> None:
    tuned, default = faults_of("tuned"), faults_of("default")
    pages = 20 * 3 * (8 << 20) // 4096
    assert default > pages // 2  # glibc's defaults: the heap's free top given back and faulted in again
    assert tuned < pages // 20


def test_the_web_server_and_the_worker_tune_their_heap() -> None:
    from webapp import serve
    from workers import tasks

    assert "heap.keep_freed_memory()" in _source(serve.main)
    assert "heap.keep_freed_memory()" in _source(tasks._on_worker_init)


def _source(fn) -> str:
    import inspect

    return inspect.getsource(fn)
