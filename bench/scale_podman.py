"""bench/scale.py's side-by-side: Debian's podman (runc, netavark bridge: what a Berth container gets by default)
with its own root under the bench's temp dir, timing `podman run -d` and `podman start` of a busybox `sleep`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

# podman's default rlimits are refused on this host (runc: "error setting rlimit type 7"); bench/net.py's too
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class Podman:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        # its own --tmpdir too: /run/libpod (the default) is shared with every other podman on the host
        self.base = ["podman", "--root", str(tmp / "root"), "--runroot", str(tmp / "run"), "--tmpdir", str(tmp / "tmp"),
                     "--network-backend", "netavark", "--runtime", "runc"]
        self.problem = None if shutil.which("podman") else "podman is not installed"
        if self.problem is None:
            tmp.mkdir(parents=True, exist_ok=True)
            tar = tmp / "busybox.tar"
            subprocess.run(["tar", "-C", "/", "-cf", str(tar), "bin/busybox"], check=True)
            imp = subprocess.run(self.base + ["import", "--change", "CMD /bin/busybox sleep 1000000", str(tar), "bbx"],
                                 capture_output=True, text=True)
            if imp.returncode != 0:
                self.problem = f"podman import failed: {imp.stderr.strip()[-300:]}"

    def _ok(self, argv: list[str]) -> str:
        r = subprocess.run(self.base + argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"podman {argv[0]} failed: {r.stderr.strip()[-300:]}")
        return r.stdout.strip()

    def run_d(self) -> float:
        """ms of `podman run -d` (returns once the container runs); the container is removed after."""
        t = time.perf_counter()
        cid = self._ok(["run", "-d", *LIMITS, "bbx", "/bin/busybox", "sleep", "1000000"])
        ms = (time.perf_counter() - t) * 1000
        self._ok(["rm", "-f", "-t", "0", cid])
        return ms

    def start(self) -> float:
        """ms of `podman start` of a created container."""
        cid = self._ok(["create", *LIMITS, "bbx", "/bin/busybox", "sleep", "1000000"])
        t = time.perf_counter()
        self._ok(["start", cid])
        ms = (time.perf_counter() - t) * 1000
        self._ok(["rm", "-f", "-t", "0", cid])
        return ms

    def close(self) -> None:
        if self.problem is None:
            subprocess.run(self.base + ["system", "reset", "-f"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
