"""The registry transport: `pull`, `push`, `login` against any OCI distribution / Docker registry v2 server.

Why a client written here on `requests` rather than driving Debian's skopeo (or python-dxf / oras from PyPI):
- skopeo writes an OCI layout by itself, outside the store's locks, with its own `ref.name` convention (the
  tag alone, where the store keeps `name:tag`), and it does not unpack layers. Berth's pull hashes each blob
  once as it streams into the store's staging and starts unpacking it (unpack.py) as soon as it is verified,
  while the other blobs still download.
- skopeo's progress is bars on a terminal, not per-layer bytes a job can report; its credentials come from
  files or argv (visible in `ps`), where a job must keep them in memory only.
- Speed: bench/registry.py and bench/README.md (pull, pull → a container running, push, beside skopeo and
  podman).
- python-dxf and oras are thin wrappers that would still need the token flow, index selection and store
  staging written around them.
The grammar of references is in registry_ref.py, credentials and the token flow in registry_auth.py and
registry_client.py, the two directions in registry_pull.py and registry_push.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .registry_auth import Credentials, read_docker_config, write_docker_config
from .registry_client import RegistryClient
from .registry_pull import Progress, PullResult, parse_platform
from .registry_pull import pull as _pull
from .registry_push import CHUNK_SIZE, PushResult
from .registry_push import push as _push
from .registry_ref import RegistryRef, parse

if TYPE_CHECKING:
    from .store import ImageStore

__all__ = ["Credentials", "PullResult", "PushResult", "RegistryRef", "login", "logout", "parse", "parse_platform",
           "pull", "push"]


def client_for(ref: RegistryRef, *, credentials: Credentials | None = None, auth_file: str | None = None,
               use_docker_config: bool = False, insecure: bool = False, ca_file: str | None = None,
               timeout: float = 60) -> RegistryClient:
    """A client for `ref`'s registry; credentials given win over Docker's config.json (read only if asked)."""
    if credentials is None and (use_docker_config or auth_file):
        credentials = read_docker_config(ref.domain, auth_file)
    return RegistryClient(ref.domain, api_host=ref.api_host, credentials=credentials, insecure=insecure,
                          ca_file=ca_file, timeout=timeout)


def pull(store: ImageStore, reference: str, *, platform: str | None = None, progress: Progress | None = None,
         tag: str | None = None, workers: int = 4, unpack: str = "background",
         unpack_progress: Progress | None = None, **client_args) -> PullResult:
    """`docker pull reference`: into `store`, tagged as Docker names it (or `tag`); its layers unpack in the
    background unless `unpack="inline"` (see registry_pull.pull)."""
    ref = parse(reference)
    parse_platform(platform)  # a bad --platform fails before any request
    with client_for(ref, **client_args) as client:
        return _pull(store, ref, client, platform=platform, progress=progress, workers=workers, tag=tag,
                     unpack=unpack, unpack_progress=unpack_progress)


def push(store: ImageStore, source: str, destination: str | None = None, *, progress: Progress | None = None,
         chunk_size: int = CHUNK_SIZE, mount_from: str | None = None, workers: int = 3,
         **client_args) -> PushResult:
    """`docker push`: the local image `source` to `destination` (default: `source` read as a reference)."""
    ref = parse(destination or source, field="destination" if destination else "ref")
    with client_for(ref, **client_args) as client:
        return _push(store, source, ref, client, progress=progress, chunk_size=chunk_size,
                     mount_from=mount_from, workers=workers)


def login(server: str, credentials: Credentials, *, auth_file: str | os.PathLike[str] | None = None,
          save: bool = True, insecure: bool = False, ca_file: str | None = None) -> str:
    """Check `credentials` against `server` (GET /v2/ with the handshake) and save them; the domain."""
    ref = parse(f"{server.rstrip('/')}/login-check" if server else "login-check")
    with RegistryClient(ref.domain, api_host=ref.api_host, credentials=credentials, insecure=insecure,
                        ca_file=ca_file) as client:
        client.ping(scope=f"repository:{ref.path}:pull")
    if save:
        write_docker_config(ref.domain, credentials, auth_file)
    return ref.domain


def logout(server: str, *, auth_file: str | os.PathLike[str] | None = None) -> bool:
    ref = parse(f"{server.rstrip('/')}/login-check" if server else "login-check")
    return write_docker_config(ref.domain, None, auth_file)
