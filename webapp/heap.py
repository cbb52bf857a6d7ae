"""How the web server's and the workers' C heap hands memory back (glibc's malloc; elsewhere nothing is done).

A transfer passes its bytes through buffers of 1-8 MiB that are made and dropped in turn. With glibc's defaults
each is mapped afresh (above a threshold that starts at 128 KiB) or the heap's top is given back once 2x that
is free, so every buffer costs its pages' faults again: during a move of 250 MB (bench/move.py) the three
processes took about 200k page faults, and on a VM whose freed pages go back to the hypervisor each of those
is slow. With large buffers served from the heap and up to TRIM of free heap kept, they took about 45k and 0.2 s
less CPU. The price is at most TRIM of freed memory held by an idle process."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP = 32 << 20  # glibc's own ceiling for its sliding threshold: a buffer up to this comes from the heap
TRIM = 128 << 20


def keep_freed_memory() -> bool:
    """Tune this process's malloc (and its children's after a fork); False where it is not glibc's."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM))
