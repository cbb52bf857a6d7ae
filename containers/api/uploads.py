"""Image uploads straight into the web server's staging dir (containers/transfer_files.py), chunk by chunk,
never whole in memory; a file has no name until complete, so a request cut off mid-upload leaves nothing.

Two ways in: a multipart form (field `file`, written by StagingUploadHandler as Django parses it) or the
raw request body (Content-Type application/x-tar, application/gzip, application/zstd or
application/octet-stream), copied from the request stream.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from .. import services, transfer_files

RAW_TYPES = ("application/x-tar", "application/tar", "application/gzip", "application/x-gzip",
             "application/zstd", "application/x-zstd", "application/octet-stream")


class StagedFile(UploadedFile):
    """A multipart file already on disk in the uploads dir; `.staged_path` is where."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None):
        super().__init__(file=open(path, "rb"), name=name, content_type=content_type, size=size)
        self.staged_path = path


class StagingUploadHandler(FileUploadHandler):
    """Writes each file of a multipart body anonymously into the staging dir as it arrives, and names it
    `<uuid>.upload` once complete (locked until the request ends)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.paths: list[Path] = []
        self.too_big = False
        self._staging: transfer_files.Staging | None = None
        self._size = 0

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self._staging = transfer_files.Staging(services.uploads_dir())
        self._size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self._size += len(raw_data)
        if self._size > settings.BERTH_MAX_UPLOAD_BYTES:
            self.too_big = True
            self.cleanup()
            raise StopUpload(connection_reset=True)
        self._staging.write(raw_data)
        return None

    def file_complete(self, file_size: int):
        path = self._staging.publish(services.new_upload_path())
        transfer_files.hold(self._staging)
        self._staging = None
        self.paths.append(path)
        return StagedFile(path, self.file_name, file_size, self.content_type)

    def upload_interrupted(self) -> None:
        self.cleanup()

    def cleanup(self, keep: Path | None = None) -> None:
        """Remove every staged file but `keep` (the one handed to a service, which owns it then); the
        request's locks are dropped either way."""
        if self._staging is not None:
            self._staging.discard()
            self._staging = None
        for path in self.paths:
            if keep is None or path != keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            transfer_files.release_path(path)


def stage_raw_body(django_request) -> Path:
    """Copy the raw request body to the staging dir in 1 MiB chunks; ServiceError(413) past the limit."""
    length = django_request.META.get("CONTENT_LENGTH") or ""
    if length.isascii() and length.isdigit() and int(length) > settings.BERTH_MAX_UPLOAD_BYTES:
        raise services.ServiceError("invalid", f"the upload is larger than {settings.BERTH_MAX_UPLOAD_BYTES} "
                                               "bytes", field="file", status=413)
    return services.save_upload(django_request, limit=settings.BERTH_MAX_UPLOAD_BYTES)
