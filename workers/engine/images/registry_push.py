"""Push: each blob (layers, then config) is HEAD-checked first and sent only when the registry lacks it
(or mounted from another repository of the same registry when `mount_from` is given); a blob up to
`chunk_size` goes in one PUT, a larger one as PATCH chunks; the manifest last, its digest reported."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .errors import RegistryError
from .layout import OCI_MANIFEST
from .registry_client import RegistryClient
from .registry_ref import RegistryRef

if TYPE_CHECKING:
    from .store import ImageStore

CHUNK_SIZE = 64 << 20
Progress = Callable[[dict[str, Any]], None]


@dataclass
class PushResult:
    ref: str
    digest: str
    size: int
    sent: list[str]  # blob digests uploaded
    skipped: list[str]  # blob digests the registry had (or mounted)


class _Counting:
    """A file body for requests that reports bytes read and stops at `limit`."""

    def __init__(self, f, limit: int, report: Callable[[int], None]) -> None:
        self.f, self.left, self.report, self.done = f, limit, report, 0
        self.start = f.tell()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        self.done += len(data)
        self.report(len(data))
        return data

    def tell(self) -> int:
        return self.f.tell() - self.start

    def seek(self, pos: int) -> None:  # the client resends after a 401 from the start
        self.left += self.done - pos
        self.done = pos
        self.f.seek(self.start + pos)

    def __len__(self) -> int:
        return self.left


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def push(store: ImageStore, source: str, ref: RegistryRef, client: RegistryClient, *,
         progress: Progress | None = None, chunk_size: int = CHUNK_SIZE, mount_from: str | None = None,
         workers: int = 3) -> PushResult:
    """Push the local image `source` to `ref` (a tag; a digest reference is refused)."""
    if ref.digest:
        raise RegistryError(f"{ref}: push to a tag, not a digest")
    emit = progress or (lambda event: None)
    image = store.resolve(source)
    scope = f"repository:{ref.path}:pull,push"
    if mount_from:
        scope += f" repository:{mount_from}:pull"
    blobs = [*image.manifest.get("layers", []), image.manifest["config"]]
    sent: list[str] = []
    skipped: list[str] = []

    def upload(desc: dict[str, Any]) -> None:
        digest, size = desc["digest"], desc["size"]
        head = client.request("HEAD", f"/v2/{ref.path}/blobs/{digest}", scope=scope, ok=(200, 404))
        head.close()
        if head.status_code == 200:
            skipped.append(digest)
            emit({"status": "exists", "id": digest, "current": size, "total": size})
            return
        query = {"mount": digest, "from": mount_from} if mount_from else {}
        start = client.request("POST", f"/v2/{ref.path}/blobs/uploads/" + ("?" + urlencode(query) if query else ""),
                               scope=scope, ok=(201, 202))
        start.close()
        if start.status_code == 201:  # mounted from the other repository: nothing to send
            skipped.append(digest)
            emit({"status": "mounted", "id": digest, "current": size, "total": size})
            return
        location = client.url(start.headers["Location"])
        done = [0]

        def report(n: int) -> None:
            done[0] += n
            emit({"status": "uploading", "id": digest, "current": done[0], "total": size})

        with open(store.blob_path(digest), "rb") as f:
            if size <= chunk_size:
                client.request("PUT", _with_query(location, digest=digest), scope=scope, ok=(201,),
                               data=_Counting(f, size, report),
                               headers={"Content-Type": "application/octet-stream",
                                        "Content-Length": str(size)}).close()
            else:
                offset = 0
                while offset < size:
                    n = min(chunk_size, size - offset)
                    resp = client.request("PATCH", location, scope=scope, ok=(202,),
                                          data=_Counting(f, n, report),
                                          headers={"Content-Type": "application/octet-stream",
                                                   "Content-Length": str(n),
                                                   "Content-Range": f"{offset}-{offset + n - 1}"})
                    resp.close()
                    location = client.url(resp.headers["Location"])
                    offset += n
                client.request("PUT", _with_query(location, digest=digest), scope=scope, ok=(201,),
                               headers={"Content-Length": "0"}).close()
        sent.append(digest)
        emit({"status": "pushed", "id": digest, "current": size, "total": size})

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(upload, d) for d in blobs[:-1]]:
            future.result()
    upload(blobs[-1])  # the config after the layers, as docker does
    body = store.blob_path(image.digest).read_bytes()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    media = image.manifest.get("mediaType") or OCI_MANIFEST
    resp = client.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag or 'latest'}", scope=scope, ok=(201,),
                          data=body, headers={"Content-Type": media})
    resp.close()
    said = resp.headers.get("Docker-Content-Digest")
    if said and said != digest:
        raise RegistryError(f"{ref}: the registry stored the manifest as {said}, expected {digest}")
    emit({"status": "done", "digest": digest, "size": len(body)})
    return PushResult(str(ref), digest, len(body), sent, skipped)
