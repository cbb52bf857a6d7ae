"""Builds from a Containerfile/Dockerfile: parsed by dockerfile-parse, RUN in Berth containers, a layer per
filesystem step, a cache keyed as Docker keys it."""

from .builder import BuildResult, build
from .errors import BuildError

__all__ = ["BuildError", "BuildResult", "build"]
