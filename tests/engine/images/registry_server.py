"""A real registry on loopback for the registry tests: Debian's docker-registry (distribution 2.8) with its
filesystem storage under the test's tmp dir, anonymous, htpasswd (bcrypt from libcrypt) or token auth; and a
small token issuer written per Docker's token spec (ES256 JWT with an x5c chain the registry trusts)."""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.conftest import die_with_parent, stop_process

with warnings.catch_warnings():  # bcrypt for htpasswd through libxcrypt: no new dependency (still in 3.11/3.12)
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Docker's token spec: GET /token?service=…&scope=repository:name:actions with Basic credentials →
    {"token": JWT}. `grants[user]` lists (repository, actions) the user may have; the anonymous user ''."""

    def __init__(self, workdir: Path, users: dict[str, str], grants: dict[str, list[tuple[str, str]]]) -> None:
        self.users, self.grants, self.issued = users, grants, []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = workdir / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                issuer._serve(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve(self, req: http.server.BaseHTTPRequestHandler) -> None:
        user = ""
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                req.send_response(401)
                req.end_headers()
                return
            user = name
        query = parse_qs(urlparse(req.path).query)
        access = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            allowed = {a for r, acts in self.grants.get(user, []) if r == repo for a in acts.split(",")}
            granted = [a for a in actions.split(",") if a in allowed]
            if granted:
                access.append({"type": kind, "name": repo, "actions": granted})
        self.issued.append((user, access))
        body = json.dumps({"token": self.sign(query.get("service", [""])[0], user, access)}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def sign(self, service: str, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "berth-test-issuer", "sub": subject, "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now - 10, "jti": f"{now}-{len(self.issued)}", "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalRegistry:
    """docker-registry serving `workdir/storage` on 127.0.0.1:<port>; stop() and start() keep both."""

    def __init__(self, workdir: Path, auth: str | None = None, users: dict[str, str] | None = None,
                 issuer: TokenIssuer | None = None) -> None:
        self.workdir, self.port = workdir, free_port()
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
                  "http": {"addr": f"127.0.0.1:{self.port}", "secret": "berth-test"}}
        if auth == "htpasswd":
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"
                                        for u, p in (users or {}).items()))
            config["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(htpasswd)}}
        elif auth == "token":
            config["auth"] = {"token": {"realm": issuer.realm, "service": "berth-test-registry",
                                        "issuer": "berth-test-issuer", "rootcertbundle": str(issuer.bundle)}}
        self.config = workdir / "config.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while True:  # ready = an HTTP answer on /v2/
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"docker-registry did not come up: {(self.workdir / 'registry.log').read_text()}")
                time.sleep(0.05)
            finally:
                conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL by pid: the registry vanishes mid-transfer."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def blob_file(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def registry_available() -> bool:
    return shutil.which(REGISTRY) is not None
