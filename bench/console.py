"""The way in, measured: `exec` of /bin/true, and keystroke echo latency in a terminal session.

    sudo .venv/bin/python bench/console.py [--runs 30] [--keys 200] [--no-web]

exec wall time (median, p90), runners interleaved round by round:
  berth (warm)  ContainerManager.exec_start + exec_wait in one process: the monitor runs the runtime's
                `exec --detach` and owns the session (what the worker's exec job does)
  berth CLI     `python -m workers.engine exec NAME /bin/true` (a new interpreter each time)
  runc exec     `runc exec ID /bin/true` on a runc container
  podman exec   `podman exec NAME /bin/true` (runc runtime, its own store under the work dir), if it runs

echo latency (p50, p99) of one keystroke written to `cat` in a terminal until its echo is read back, runners
interleaved key by key (each has its own session, opened before the first key):
  berth monitor       exec_input to the monitor, echo read from an exec_attach stream
  berth via Redis     the console's path minus the WebSocket: XADD to berth:exec:<id>:in, the relay process,
                      the monitor, the pty and back through berth:exec:<id>:out (a private redis-server)
  berth console WebSocket (full stack)
                      what the browser does: {"type": "input"} text frames on /ws/containers/<pk>/console/?command=cat
                      (the `websockets` client, signed in by a session cookie of a team operator) to the ASGI server
                      of `make run` (webapp/serve.py: uvicorn), the console consumer, Redis, the relay the host's
                      Celery worker started for the session, the monitor, the pty, and back as binary frames. The
                      stack is the bench's own: redis-server on a free loopback port, a migrated SQLite database,
                      the web server, one worker with its own state root (busybox seeded by an image.seed job), a
                      busybox container created and removed through containers.services; all of it stopped by
                      PID and removed by path at the end (`--no-web` skips it)
  runc exec -t        `runc exec -t ID cat` in a pty of ours
  podman exec -it     `podman exec -it NAME cat` in a pty of ours
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from console_web import FullStack, wait_until  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


class PtyEcho:
    """`argv` (running cat in a terminal) run in a pty of ours."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        time.sleep(1.0)  # the remote cat starts (measured keys begin after warm-up keys anyway)

    def key(self, ch: bytes) -> float:
        t = time.perf_counter()
        os.write(self.fd, ch)
        buf = b""
        while ch not in buf:
            r, _, _ = select.select([self.fd], [], [], 10)
            if not r:
                raise RuntimeError(f"{self.argv[:2]}: no echo")
            buf += os.read(self.fd, 4096)
        return (time.perf_counter() - t) * 1000

    def close(self) -> None:
        try:
            os.write(self.fd, b"\x04")
        except OSError:
            pass
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


class MonitorEcho:
    """exec_input to the monitor, the echo read from an exec_attach stream."""

    def __init__(self, m, cid: str) -> None:
        self.m, self.cid = m, cid
        self.s = m.exec_start(cid, ["cat"], tty=True, rows=24, cols=80)
        frames = iter(m.exec_attach(cid, self.s["id"]))
        self.got = threading.Condition()
        self.seen = bytearray()

        def read():
            for f in frames:
                if "data" in f:
                    with self.got:
                        self.seen.extend(f["data"])
                        self.got.notify_all()

        threading.Thread(target=read, daemon=True).start()

    def key(self, ch: bytes) -> float:
        with self.got:
            self.seen.clear()
        t = time.perf_counter()
        self.m.exec_input(self.cid, self.s["id"], ch)
        with self.got:
            if not self.got.wait_for(lambda: ch in self.seen, timeout=10):
                raise RuntimeError("monitor: no echo")
        return (time.perf_counter() - t) * 1000

    def close(self) -> None:
        self.m.exec_kill(self.cid, self.s["id"])


class RedisEcho:
    """XADD to the session's input stream, the relay process, the monitor, and back through its output stream."""

    def __init__(self, m, root: Path, cid: str, work: Path) -> None:
        import redis

        from workers.engine.monitor.exec_relay import in_key, out_key

        self.m, self.cid = m, cid
        self.relay = None
        sock = work / "redis.sock"
        self.server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                                        "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            wait_until(sock.exists, 5, "the private redis-server's socket", 0.05)
            url = f"unix://{sock}"
            self.s = m.exec_start(cid, ["cat"], tty=True, rows=24, cols=80)
            self.relay = subprocess.Popen(
                [sys.executable, "-c", "import sys; from workers.engine.monitor.exec_relay import relay; "
                 "relay(sys.argv[1], sys.argv[2], sys.argv[3])", str(root), self.s["id"], url],
                env={**os.environ, "PYTHONPATH": str(REPO)})
            self.r = redis.Redis.from_url(url)
        except BaseException:
            self.server.kill()
            self.server.wait()
            raise
        self.in_key, self.out_key = in_key(self.s["id"]), out_key(self.s["id"])
        self.last = "0-0"

    def key(self, ch: bytes) -> float:
        t = time.perf_counter()
        self.r.xadd(self.in_key, {"k": "input", "d": ch})
        buf = b""
        while ch not in buf:
            got = self.r.xread({self.out_key: self.last}, block=10000)
            if not got:
                raise RuntimeError("no echo through Redis")
            for _k, entries in got:
                for eid, fields in entries:
                    self.last = eid
                    buf += fields.get(b"d", b"")
        return (time.perf_counter() - t) * 1000

    def close(self) -> None:
        try:
            self.m.exec_kill(self.cid, self.s["id"])
            if self.relay is not None:
                try:
                    self.relay.wait(30)
                except subprocess.TimeoutExpired:
                    self.relay.kill()
                    self.relay.wait()
        finally:
            self.server.kill()
            self.server.wait()


def echo_rounds(runners: dict, keys: int, warmup: int = 5) -> dict[str, list[float]]:
    """Keystroke → echo latencies (ms), the runners taking turns key by key (so load spikes hit all alike)."""
    out: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(keys + warmup):
        ch = bytes([97 + i % 26])
        for name, r in runners.items():
            ms = r.key(ch)
            if i >= warmup:
                out[name].append(ms)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--no-web", action="store_true", help="skip the full stack's console WebSocket row")
    args = ap.parse_args()
    from tests.engine.containers.conftest import teardown_root
    from workers.engine.containers import ContainerManager
    from workers.engine.containers.oci import binary
    from workers.engine.images.base import ensure_base_images
    from workers.engine.images.busybox import make_busybox_rootfs
    from workers.engine.images.store import ImageStore

    work = Path(tempfile.mkdtemp(prefix="bc"))
    root = work / "root"
    podman = [binary("podman") or "podman", "--root", str(work / "pstore"), "--runroot", str(work / "prun"),
              "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
    try:
        ensure_base_images(ImageStore(root))
        m = ContainerManager(root)
        berth = m.create("busybox", name="bench-berth", command=["sleep", "100000"])
        m.start(berth["id"])
        runc = m.create("busybox", name="bench-runc", command=["sleep", "100000"], runtime="runc")
        m.start(runc["id"])
        runc_cmd = [*m.runtime("runc").command()]
        runners = {
            "berth (warm)": lambda: m.exec_wait(berth["id"], m.exec_start(berth["id"], ["/bin/true"])["id"], 30),
            "berth CLI": lambda: subprocess.run([sys.executable, "-m", "workers.engine", "--root", str(root), "exec",
                                                 "bench-berth", "/bin/true"], check=True,
                                                env={**os.environ, "PYTHONPATH": str(REPO)}),
            "runc exec": lambda: subprocess.run([*runc_cmd, "exec", runc["id"], "/bin/true"], check=True),
        }
        podman_why = None
        if shutil.which("podman"):
            import tarfile

            rootfs = make_busybox_rootfs(work / "prootfs")
            with tarfile.open(work / "bb.tar", "w") as tar:
                for c in sorted(rootfs.iterdir()):
                    tar.add(c, arcname=c.name)
            p = subprocess.run([*podman, "import", str(work / "bb.tar"), "berthbench:1"], capture_output=True,
                               text=True)
            p = p if p.returncode else subprocess.run(
                [*podman, "run", "-d", "--net", "none", "--ulimit", "nofile=20000:20000", "--ulimit",
                 "nproc=20000:20000", "--name", "pb", "berthbench:1", "sleep", "100000"], capture_output=True, text=True)
            if p.returncode == 0:
                runners["podman exec"] = lambda: subprocess.run([*podman, "exec", "pb", "/bin/true"], check=True)
            else:
                podman_why = p.stderr.strip()[:200]
        else:
            podman_why = "not installed"
        times: dict[str, list[float]] = {k: [] for k in runners}
        for fn in runners.values():
            fn()  # warm-up
        for _ in range(args.runs):
            for name, fn in runners.items():
                times[name].append(timed(fn))
        base = statistics.median(times.get("podman exec") or times["runc exec"])
        print(f"exec /bin/true, {args.runs} runs (ms)          median    p90   × {'podman' if 'podman exec' in times else 'runc'}")
        for name, ts in times.items():
            print(f"  {name:<38} {statistics.median(ts):7.1f} {pct(ts, 90):7.1f} {statistics.median(ts) / base:6.2f}")
        if podman_why:
            print(f"  podman exec: not measured ({podman_why})")

        with contextlib.ExitStack() as opened:
            web_why = "--no-web" if args.no_web else None
            stack = None
            if not args.no_web:
                try:
                    (work / "fs").mkdir()
                    stack = FullStack(work / "fs")
                    opened.callback(stack.close)
                except Exception as exc:  # noqa: BLE001 - the other rows still stand; the reason is printed
                    web_why = f"{exc!r}"[:300]

            def add(name: str, open_fn) -> None:
                runner = open_fn()
                opened.callback(runner.close)
                echo_runners[name] = runner

            echo_runners: dict = {}
            add("berth monitor", lambda: MonitorEcho(m, berth["id"]))
            add("berth via Redis (relay)", lambda: RedisEcho(m, root, berth["id"], work))
            if stack is not None:
                add("berth console WebSocket (full stack)", stack.console)
            add("runc exec -t", lambda: PtyEcho([*runc_cmd, "exec", "-t", runc["id"], "cat"]))
            if "podman exec" in runners:
                add("podman exec -it", lambda: PtyEcho([*podman, "exec", "-it", "pb", "cat"]))
            echo = echo_rounds(echo_runners, args.keys)
        print(f"\nkeystroke echo latency, {args.keys} keys (ms)     p50    p99")
        for name, ts in echo.items():
            print(f"  {name:<38} {pct(ts, 50):6.2f} {pct(ts, 99):6.2f}")
        if web_why:
            print(f"  berth console WebSocket (full stack): not measured ({web_why})")
        return 0
    finally:
        if shutil.which("podman"):
            subprocess.run([*podman, "rm", "-f", "-t", "0", "pb"], capture_output=True)
            subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        teardown_root(root)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
