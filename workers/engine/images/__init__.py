"""Berth's image store: an OCI image layout per host, and the ways images move in and out."""

from .errors import (  # noqa: E402
    ArchiveError,
    CorruptArchive,
    DigestMismatch,
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    MissingBlob,
    RefTaken,
    TooLarge,
    UnsafeEntry,
)
from .store import Image, ImageStore  # noqa: E402
from .tarsafe import TarPolicy  # noqa: E402

__all__ = [
    "ArchiveError", "CorruptArchive", "DigestMismatch", "Image", "ImageError", "ImageInUse", "ImageNotFound",
    "ImageStore", "InvalidReference", "MissingBlob", "RefTaken", "TarPolicy", "TooLarge", "UnsafeEntry",
]
