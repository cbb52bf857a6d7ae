"""The way in, measured: `exec` of /bin/true, and keystroke echo latency in a terminal session.

    sudo .venv/bin/python bench/console.py [--runs 30] [--keys 200]

exec wall time (median, p90), runners interleaved round by round:
  berth (warm)  ContainerManager.exec_start + exec_wait in one process: the monitor runs the runtime's
                `exec --detach` and owns the session (what the worker's exec job does)
  berth CLI     `python -m workers.engine exec NAME /bin/true` (a new interpreter each time)
  runc exec     `runc exec ID /bin/true` on a runc container
  podman exec   `podman exec NAME /bin/true` (runc runtime, its own store under the work dir), if it runs

echo latency (p50, p99) of one keystroke written to `cat` in a terminal until its echo is read back:
  berth monitor       exec_input to the monitor, echo read from an exec_attach stream
  berth via Redis     the console's path minus the WebSocket: XADD to berth:exec:<id>:in, the relay process,
                      the monitor, the pty and back through berth:exec:<id>:out (a private redis-server)
  runc exec -t        `runc exec -t ID cat` in a pty of ours
  podman exec -it     `podman exec -it NAME cat` in a pty of ours
"""

from __future__ import annotations

import argparse
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


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def pty_echo(argv: list[str], keys: int) -> list[float]:
    """Keystroke → echo latencies (ms) of `argv` (running cat in a terminal) run in a pty of ours."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    try:
        time.sleep(1.0)  # the remote cat starts (measured runs begin after a warm-up key anyway)
        out = []
        for i in range(keys + 5):
            ch = bytes([97 + i % 26])
            t = time.perf_counter()
            os.write(fd, ch)
            buf = b""
            while ch not in buf:
                r, _, _ = select.select([fd], [], [], 10)
                if not r:
                    raise RuntimeError(f"{argv[:2]}: no echo")
                buf += os.read(fd, 4096)
            if i >= 5:
                out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        os.write(fd, b"\x04")
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def monitor_echo(m, cid: str, keys: int) -> list[float]:
    s = m.exec_start(cid, ["cat"], tty=True, rows=24, cols=80)
    frames = iter(m.exec_attach(cid, s["id"]))
    got = threading.Condition()
    seen = bytearray()

    def read():
        for f in frames:
            if "data" in f:
                with got:
                    seen.extend(f["data"])
                    got.notify_all()

    threading.Thread(target=read, daemon=True).start()
    out = []
    for i in range(keys + 5):
        ch = bytes([97 + i % 26])
        with got:
            seen.clear()
        t = time.perf_counter()
        m.exec_input(cid, s["id"], ch)
        with got:
            got.wait_for(lambda ch=ch: ch in seen, timeout=10)
        if i >= 5:
            out.append((time.perf_counter() - t) * 1000)
    m.exec_kill(cid, s["id"])
    return out


def redis_echo(m, root: Path, cid: str, keys: int, work: Path) -> list[float]:
    import redis

    from workers.engine.monitor.exec_relay import in_key, out_key

    sock = work / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        url = f"unix://{sock}"
        s = m.exec_start(cid, ["cat"], tty=True, rows=24, cols=80)
        relay = subprocess.Popen([sys.executable, "-c", "import sys; from workers.engine.monitor.exec_relay import "
                                  "relay; relay(sys.argv[1], sys.argv[2], sys.argv[3])", str(root), s["id"], url],
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        r = redis.Redis.from_url(url)
        last = "0-0"
        out = []
        for i in range(keys + 5):
            ch = bytes([97 + i % 26])
            t = time.perf_counter()
            r.xadd(in_key(s["id"]), {"k": "input", "d": ch})
            buf = b""
            while ch not in buf:
                got = r.xread({out_key(s["id"]): last}, block=10000)
                assert got, "no echo through Redis"
                for _k, entries in got:
                    for eid, fields in entries:
                        last = eid
                        buf += fields.get(b"d", b"")
            if i >= 5:
                out.append((time.perf_counter() - t) * 1000)
        m.exec_kill(cid, s["id"])
        relay.wait(30)
        return out
    finally:
        server.kill()
        server.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keys", type=int, default=200)
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

        echo = {"berth monitor": monitor_echo(m, berth["id"], args.keys),
                "berth via Redis (relay)": redis_echo(m, root, berth["id"], args.keys, work),
                "runc exec -t": pty_echo([*runc_cmd, "exec", "-t", runc["id"], "cat"], args.keys)}
        if "podman exec" in runners:
            echo["podman exec -it"] = pty_echo([*podman, "exec", "-it", "pb", "cat"], args.keys)
        print(f"\nkeystroke echo latency, {args.keys} keys (ms)     p50    p99")
        for name, ts in echo.items():
            print(f"  {name:<38} {pct(ts, 50):6.2f} {pct(ts, 99):6.2f}")
        return 0
    finally:
        if shutil.which("podman"):
            subprocess.run([*podman, "rm", "-f", "-t", "0", "pb"], capture_output=True)
            subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        teardown_root(root)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
