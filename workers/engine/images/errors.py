"""Errors of the image store; every message is one line and names what it is about."""

from __future__ import annotations


class ImageError(Exception):
    """Base of every image-store error; `code` is stable (the API's vocabulary), `field` the input to blame."""

    code = "image_error"
    field: str | None = None


class InvalidReference(ImageError):
    code = "invalid"
    field = "ref"


class ImageNotFound(ImageError):
    code = "no_such_image"
    field = "image"


class ImageInUse(ImageError):
    code = "conflict"


class RefTaken(ImageError):
    """A tag that would move an existing ref (the caller asked that nothing be replaced)."""

    code = "name_taken"
    field = "ref"

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"{ref} already exists")


class ArchiveError(ImageError):
    """A tarball or archive was refused; `entry` names the offending member when there is one."""

    code = "bad_archive"
    field = "file"

    def __init__(self, message: str, entry: str | None = None) -> None:
        self.entry = entry
        super().__init__(f"{entry}: {message}" if entry is not None else message)


class UnsafeEntry(ArchiveError):
    """An entry would escape the target or break the policy (path, link, device, setuid, duplicate)."""


class CorruptArchive(ArchiveError):
    """Truncated, undecodable or malformed input."""


class DigestMismatch(ArchiveError):
    pass


class MissingBlob(ArchiveError):
    pass


class TooLarge(ArchiveError):
    """The input expands past the size the caller allows (a decompression bomb, or just too big)."""

    code = "too_large"


class RegistryError(ImageError):
    """A registry refused or failed a request; the message carries the registry's own error text."""

    code = "registry_error"
    field = "ref"


class RegistryAuthError(RegistryError):
    """Credentials missing or refused (401/403 after the auth handshake)."""

    code = "unauthorized"
    field = "credentials"


class RegistryUnreachable(RegistryError):
    """No connection (refused, reset mid-transfer, TLS failure); a retry may succeed."""

    code = "registry_unreachable"
    field = "ref"


class NotARootfs(ArchiveError):
    """An image archive (docker save / OCI archive) given where a root filesystem tarball is expected."""

    code = "image_archive"

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        made_by = "docker save or berth save" if fmt == "docker-archive" else "an OCI tool such as skopeo"
        super().__init__(f"this is a {fmt} (made by {made_by}), not a root filesystem tarball: "
                         "use Load to load it with its own tags")
