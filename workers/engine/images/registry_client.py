"""An HTTP session with one registry: scheme and TLS choice, the auth handshake, error decoding.

TLS verifies against the system CA bundle, plus a per-registry CA (`ca_file`, or Docker's and Podman's
`/etc/{docker,containers}/certs.d/<host>/ca.crt`). `insecure=True` (and, as Docker does, a loopback host)
allows plain HTTP and unverified TLS; nothing else does."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from .errors import ImageNotFound, RegistryAuthError, RegistryError, RegistryUnreachable
from .registry_auth import Credentials, parse_challenge

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
CERTS_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d")
USER_AGENT = "berth/1 (registry client)"


def is_loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain[1:domain.index("]")]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_ca(domain: str) -> str | None:
    for base in CERTS_DIRS:
        ca = Path(base) / domain / "ca.crt"
        if ca.is_file():
            return str(ca)
    return None


class _BigBlocks(requests.adapters.HTTPAdapter):
    """Send request bodies in 1 MiB blocks (http.client's default 8 KiB costs a third of push throughput)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["blocksize"] = 1 << 20
        super().init_poolmanager(*args, **kwargs)


class RegistryClient:
    """Requests to one registry host; thread-safe for the parallel layer transfers of one pull or push."""

    def __init__(self, domain: str, *, api_host: str | None = None, credentials: Credentials | None = None,
                 insecure: bool = False, ca_file: str | None = None, timeout: float = 60) -> None:
        self.domain = domain
        self.host = api_host or domain
        self.credentials = credentials
        self.insecure = insecure or is_loopback(self.host)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, _BigBlocks(pool_maxsize=8))
        self.session.trust_env = False  # no proxy or netrc surprises: credentials come from us only
        ca = ca_file or registry_ca(self.host)
        self.session.verify = ca if ca else (SYSTEM_CA if Path(SYSTEM_CA).exists() else True)
        self._schemes = ["https", "http"] if self.insecure else ["https"]
        self._base: str | None = None
        self._tokens: dict[str, str] = {}  # scope → Authorization header value
        self._lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], **kw) -> requests.Response:
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout, **kw)
        except requests.exceptions.SSLError as e:
            raise RegistryUnreachable(f"{self.domain}: TLS failed ({_reason(e)}); give the registry's CA, "
                                      f"or mark it insecure if it is on a private address") from None
        except requests.exceptions.RequestException as e:
            raise RegistryUnreachable(f"{self.domain}: {_reason(e)}") from None

    def base(self) -> str:
        """The registry's base URL, trying HTTPS first and HTTP only where insecure is allowed."""
        if self._base:
            return self._base
        last: Exception | None = None
        for scheme in self._schemes:
            url = f"{scheme}://{self.host}"
            verify = self.session.verify if not self.insecure else False
            try:
                self.session.get(f"{url}/v2/", timeout=self.timeout, verify=verify)
            except requests.exceptions.RequestException as e:
                last = e
                continue
            if self.insecure:
                self.session.verify = False
            self._base = url
            return url
        if isinstance(last, requests.exceptions.SSLError):
            raise RegistryUnreachable(f"{self.domain}: TLS failed ({_reason(last)}); give the registry's CA, "
                                      f"or mark it insecure if it is on a private address")
        raise RegistryUnreachable(f"{self.domain}: {_reason(last)}")

    def url(self, path: str) -> str:
        return urljoin(self.base() + "/", path)

    def request(self, method: str, path_or_url: str, *, scope: str, headers: dict[str, str] | None = None,
                ok: tuple[int, ...] = (200,), **kw) -> requests.Response:
        """Send, answering one 401 challenge (Basic or Bearer token flow) and retrying. A response whose
        status is not in `ok` raises RegistryError with the registry's message."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        hdrs = dict(headers or {})
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            hdrs["Authorization"] = token
        body = kw.get("data")
        start = body.tell() if hasattr(body, "seek") else None
        resp = self._send(method, url, hdrs, **kw)
        if resp.status_code == 401:
            resp.close()
            hdrs["Authorization"] = self._authorize(resp.headers.get("WWW-Authenticate", ""), scope)
            if start is not None:
                body.seek(start)  # a file body is sent again from where it started
            resp = self._send(method, url, hdrs, **kw)
        if resp.status_code not in ok:
            raise self.error(resp, f"{method} {_short(url)}")
        return resp

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise RegistryAuthError(f"{self.domain}: the registry asks for a login")
            value = self.credentials.basic()
        elif scheme == "bearer" and params.get("realm"):
            value = "Bearer " + self._token(params, scope)
        else:
            raise RegistryAuthError(f"{self.domain}: unsupported authentication challenge {scheme!r}")
        with self._lock:
            self._tokens[scope] = value
        return value

    def _token(self, params: dict[str, str], scope: str) -> str:
        """Docker's token spec: GET realm?service=…&scope=…, with Basic credentials when we have them."""
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            resp = self.session.get(params["realm"], params=query, auth=auth, timeout=self.timeout)
        except requests.exceptions.RequestException as e:
            raise RegistryUnreachable(f"{self.domain}: token service: {_reason(e)}") from None
        if resp.status_code in (401, 403):
            raise RegistryAuthError(f"{self.domain}: login refused by the token service"
                                    f"{' for ' + self.credentials.username if self.credentials else ''}")
        if resp.status_code != 200:
            raise RegistryError(f"{self.domain}: token service answered {resp.status_code}")
        try:
            body = resp.json()
            return body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(f"{self.domain}: the token service's answer has no token") from None

    def error(self, resp: requests.Response, what: str) -> RegistryError:
        detail = ""
        try:
            errors = resp.json().get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
        except (ValueError, AttributeError):
            pass
        resp.close()
        text = f"{self.domain}: {what}: {resp.status_code} {resp.reason}" + (f" ({detail})" if detail else "")
        if resp.status_code in (401, 403):
            return RegistryAuthError(text)
        if resp.status_code == 404:
            err = ImageNotFound(text)
            err.field = "ref"
            return err
        return RegistryError(text)

    def ping(self, scope: str = "") -> None:
        """GET /v2/ with the handshake: proves the registry answers and the credentials work."""
        self.request("GET", "/v2/", scope=scope).close()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _short(url: str) -> str:
    return url.split("?", 1)[0]


def _reason(e: BaseException | None) -> str:
    text = str(e) if e else "no answer"
    if "Connection refused" in text:
        return "connection refused"
    return text.split(": ", 1)[-1][:200]
