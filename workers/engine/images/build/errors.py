"""The build's error: `code`/`field` as every engine error; `step` and `output` for a failing instruction."""

from __future__ import annotations

from ..errors import ImageError


class BuildError(ImageError):
    code = "build_failed"

    def __init__(self, message: str, *, field: str | None = "dockerfile", step: str | None = None,
                 output: str = "") -> None:
        self.field = field
        self.step = step
        self.output = output
        super().__init__(message)
