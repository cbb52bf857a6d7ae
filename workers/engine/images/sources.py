"""Where an image operation reads from and writes to: a path, '-' (stdin/stdout) or an open stream."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def _open_source(source) -> Iterator[tuple[BinaryIO, int | None]]:
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            import sys

            yield sys.stdin.buffer, None
            return
        with open(source, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size
    else:
        yield source, None


@contextlib.contextmanager
def _open_dest(dest) -> Iterator[BinaryIO]:
    """A path is written as `<path>.partial` and renamed when complete; a stream is written as is."""
    if isinstance(dest, (str, os.PathLike)):
        if str(dest) == "-":
            import sys

            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        partial = f"{dest}.partial"
        try:
            with open(partial, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.rename(partial, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise
    else:
        yield dest
