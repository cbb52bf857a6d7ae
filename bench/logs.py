"""Logs benchmark (issue 4): how fast a container's lines reach a browser, and how many lines per
second reach the disk with nothing lost, side by side with conmon + runc (k8s-file logs).

    sudo .venv/bin/python bench/logs.py [--latency-lines 500] [--flood-lines 500000]
                                        [--rate 50000 --seconds 10] [--skip-conmon]

Everything is real and local: a private redis-server, the ASGI server of `make run` (the logs
WebSocket), a temporary SQLite database, a host state root with busybox:latest and a
ContainerManager whose monitor sends lines to that Redis. The writer inside the container is a
small static C program (compiled here with gcc) that stamps each line with CLOCK_REALTIME just
before write(2); the container shares the host's clock, so the WebSocket client's arrival time
minus the stamp is the latency. Measured:

1. write -> WebSocket client, p50/p99: sparse lines (each sent at once) and 100 lines/s (the
   consumer coalesces messages to one per ~50 ms). Also write -> log reader (the time recorded in
   the log file: Berth's monitor vs conmon), from the same runs.
2. Flood: N lines as fast as the pipe takes them. lines/s on disk = N / (time recorded for the last
   line - the writer's start); every line checked on disk (rotated files included), in order.
   Berth with the Redis sink and a WebSocket client following, Berth without the sink, conmon.
3. Sustained: --rate lines/s for --seconds s; the writer's achieved rate, how far the disk lags
   behind, nothing lost, and what the WebSocket client was sent (sampled) vs told it missed.

Everything is made under one temporary directory and removed at the end; processes are stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from logs_web import Follower, Web, asgi_name  # noqa: E402

RUNC = shutil.which("runc") or "/usr/sbin/runc"
CONMON = shutil.which("conmon")
GCC = shutil.which("gcc") or shutil.which("cc")

WRITER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static long long now_ns(void) {
  struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: logwriter paced N USEC | flood N [LINES_PER_S]\n"); return 2; }
  long n = atol(argv[2]), arg = argc > 3 ? atol(argv[3]) : 0;
  if (!strcmp(argv[1], "paced")) {  /* one unbuffered line every USEC, stamped just before write(2) */
    char buf[128];
    for (long i = 0; i < n; i++) {
      int len = snprintf(buf, sizeof buf, "lat %lld %ld\n", now_ns(), i);
      if (write(1, buf, len) != len) return 1;
      usleep(arg);
    }
    return 0;
  }
  /* flood: stdio-buffered like a busy program; optionally paced to LINES_PER_S */
  static char out[1 << 16]; setvbuf(stdout, out, _IOFBF, sizeof out);
  long long t0 = now_ns();
  printf("start %lld\n", t0);
  for (long i = 0; i < n; i++) {
    printf("flood %09ld the quick brown fox jumps over the lazy dog\n", i);
    if (arg > 0 && (i & 1023) == 1023) {
      fflush(stdout);
      long long d = t0 + (long long)(i + 1) * 1000000000LL / arg - now_ns();
      if (d > 0) { struct timespec s = {d / 1000000000LL, d % 1000000000LL}; nanosleep(&s, 0); }
    }
  }
  fflush(stdout);
  fprintf(stderr, "end %lld\n", now_ns());
  return 0;
}
"""
FLOOD_TEXT = "the quick brown fox jumps over the lazy dog\n"


# --- helpers -----------------------------------------------------------------------------------------

def parse_ns(text: str) -> int:
    """RFC 3339 with up to 9 fraction digits and Z or +hh:mm -> ns since the epoch."""
    import calendar

    text = text.strip()
    main, _, rest = text.partition(".")
    frac, tz = rest, "Z"
    for i, ch in enumerate(rest):
        if ch in "Z+-":
            frac, tz = rest[:i], rest[i:]
            break
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    if tz not in ("Z", ""):
        sign = 1 if tz[0] == "+" else -1
        hh, mm = tz[1:].split(":")
        secs -= sign * (int(hh) * 3600 + int(mm) * 60)
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms"


def stop_pid(pid: int | None) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(300):
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.01)


# --- the engines ---------------------------------------------------------------------------------------

class BerthHost:
    def __init__(self, root: Path, writer_dir: Path, redis_url: str | None):
        from workers.engine.containers import ContainerManager
        from workers.engine.images.base import ensure_base_images
        from workers.engine.images.store import ImageStore

        ensure_base_images(ImageStore(root))
        self.m = ContainerManager(root, log_redis_url=redis_url, log_max_size=64 << 20, log_max_files=20)
        self.writer_dir = writer_dir
        self.ids: list[str] = []

    def create(self, args: list[str]) -> str:
        c = self.m.create("busybox", id=uuid.uuid4().hex * 2, name=f"bench-{len(self.ids)}",
                          command=["/bench/logwriter", *args], mounts=[f"{self.writer_dir}:/bench:ro"])
        self.ids.append(c["id"])
        return c["id"]

    def run(self, cid: str, timeout: float = 600) -> list[dict]:
        self.m.start(cid)
        st = self.m.wait(cid, timeout=timeout)
        if st["exit_code"] != 0:
            raise SystemExit(f"writer exited {st['exit_code']}: {self.records(cid)[-3:]}")
        return self.records(cid)

    def records(self, cid: str) -> list[dict]:
        out = []
        for f in self.m.log_files(cid):
            with open(f, encoding="utf-8") as fh:
                out += [json.loads(line) for line in fh]
        return out

    def close(self) -> None:
        from workers.engine.monitor import MonitorClient

        for cid in self.ids:
            try:
                self.m.remove(cid, force=True)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"  (cleanup: {exc})", file=sys.stderr)
        client = MonitorClient(self.m.root)
        stop_pid(client.pid())
        stop_pid(client.holder_pid())


class ConmonHost:
    """conmon + runc writing k8s-file logs ("<time> <stream> <P|F> <text>")."""

    def __init__(self, base: Path, writer: Path):
        from workers.engine.images.busybox import make_busybox_rootfs

        self.base = base
        self.rootfs = make_busybox_rootfs(base / "rootfs")
        (self.rootfs / "bench").mkdir(exist_ok=True)
        shutil.copy2(writer, self.rootfs / "bench" / "logwriter")
        self.runc_root = base / "runc"
        self.made: list[tuple[str, int | None]] = []

    def run(self, args: list[str], timeout: float = 600) -> list[dict]:
        from workers.engine.runtime.spec import default_spec

        cid = "b" + uuid.uuid4().hex[:12]
        d = self.base / cid
        d.mkdir()
        bundle = d / "bundle"
        bundle.mkdir()
        cfg = default_spec(["/bench/logwriter", *args])
        cfg["root"] = {"path": str(self.rootfs), "readonly": False}
        (bundle / "config.json").write_text(json.dumps(cfg))
        log = d / "ctr.log"
        subprocess.run([CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", RUNC,
                        "--runtime-arg", "--root", "--runtime-arg", str(self.runc_root), "-b", str(bundle),
                        "-p", str(d / "pid"), "-P", str(d / "conmon.pid"), "-l", f"k8s-file:{log}",
                        "--exit-dir", str(d / "exits"), "--socket-dir-path", str(d), "--log-level", "error"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60)
        (d / "exits").mkdir(exist_ok=True)
        conmon_pid = int((d / "conmon.pid").read_text())
        self.made.append((cid, conmon_pid))
        for _ in range(3000):  # conmon runs `runc create` after it has detached
            if (d / "pid").exists():
                break
            time.sleep(0.01)
        subprocess.run([RUNC, "--root", str(self.runc_root), "start", cid], check=True)
        deadline = time.monotonic() + timeout
        while not (d / "exits" / cid).exists():
            if time.monotonic() > deadline:
                raise SystemExit("conmon container did not exit")
            time.sleep(0.02)
        for _ in range(500):  # conmon drains the pipes, then exits
            if not os.path.exists(f"/proc/{conmon_pid}"):
                break
            time.sleep(0.01)
        return k8s_records(log)

    def close(self) -> None:
        for cid, pid in self.made:
            subprocess.run([RUNC, "--root", str(self.runc_root), "delete", "--force", cid], capture_output=True)
            stop_pid(pid)


def k8s_records(path: Path) -> list[dict]:
    """k8s-file lines joined back into whole messages (P = partial, F = full), as json-file-like dicts."""
    out, pending = [], {"stdout": "", "stderr": ""}  # per stream: the other one may come in between
    with open(path, encoding="utf-8") as f:
        for raw in f:
            parts = raw.rstrip("\n").split(" ", 3)
            when, stream, tag, text = parts if len(parts) == 4 else (*parts, "")
            pending[stream] += text
            if tag == "F":
                out.append({"time": when, "stream": stream, "log": pending[stream] + "\n"})
                pending[stream] = ""
    return out


# --- measurements --------------------------------------------------------------------------------------

def lat_lines(records: list[dict]) -> dict[int, tuple[int, int]]:
    """seq -> (write ns, recorded ns) from a paced writer's log records."""
    out = {}
    for r in records:
        if r["log"].startswith("lat "):
            _, ns, seq = r["log"].split()
            out[int(seq)] = (int(ns), parse_ns(r["time"]))
    return out


def latency_berth(web: Web, host: BerthHost, n: int, every_us: int) -> dict:
    cid = host.create(["paced", str(n), str(every_us)])
    follower = Follower(web, web.container_row(cid))
    try:
        records = host.run(cid)
        deadline = time.monotonic() + 30
        while len(follower.lines()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        follower.close()
    disk = lat_lines(records)
    ws = []
    for arrived, line in follower.lines():
        _, ns, seq = line["log"].split()
        ws.append(arrived - int(ns))
    assert len(disk) == n, f"{len(disk)} of {n} lines on disk"
    return {"ws": ws, "ws_count": len(ws), "reader": [rec - wrote for wrote, rec in disk.values()],
            "messages": len(follower.messages)}


def flood_check(records: list[dict], n: int) -> tuple[int, int, int]:
    """(writer start ns, last line's recorded ns, lines) after checking every flood line in order."""
    out = [r for r in records if r["stream"] == "stdout"]
    assert out[0]["log"].startswith("start "), out[0]
    start = int(out[0]["log"].split()[1])
    body = out[1:]
    assert len(body) == n, f"{len(body)} of {n} lines on disk"
    for i in (0, n // 2, n - 1):
        assert body[i]["log"] == f"flood {i:09d} {FLOOD_TEXT}", body[i]
    for i, r in enumerate(body):
        if r["log"] != f"flood {i:09d} {FLOOD_TEXT}":
            raise AssertionError(f"line {i} is {r['log']!r}: a line is missing or out of order")
    return start, parse_ns(body[-1]["time"]), len(body)


def flood_berth(web: Web | None, host: BerthHost, n: int, rate: int = 0) -> dict:
    cid = host.create(["flood", str(n), str(rate)])
    follower = Follower(web, web.container_row(cid)) if web else None
    try:
        records = host.run(cid)
        if follower:
            deadline = time.monotonic() + 30
            while follower.accounted() < n + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        if follower:
            follower.close()
    start, last, count = flood_check(records, n)
    end = int(next(r["log"].split()[1] for r in records if r["stream"] == "stderr" and r["log"].startswith("end ")))
    res = {"lines": count, "seconds": (last - start) / 1e9, "writer_seconds": (end - start) / 1e9,
           "lag": (last - end) / 1e9}
    if follower:
        if follower.accounted() != n + 2:  # the flood, its start line and its end line
            print(f"  !! the WebSocket accounted for {follower.accounted():,} of {n + 2:,} lines: the Redis stream "
                  "missed some", file=sys.stderr)
        res.update(sent=len(follower.lines()),
                   dropped=sum(m["dropped"] for _, m in follower.messages),
                   sampled=sum(1 for _, m in follower.messages if m["mode"] == "sampled"),
                   messages=len(follower.messages))
    return res


def flood_conmon(host: ConmonHost, n: int, rate: int = 0) -> dict:
    records = host.run(["flood", str(n), str(rate)])
    start, last, count = flood_check(records, n)
    end = int(next(r["log"].split()[1] for r in records if r["stream"] == "stderr" and r["log"].startswith("end ")))
    return {"lines": count, "seconds": (last - start) / 1e9, "writer_seconds": (end - start) / 1e9,
            "lag": (last - end) / 1e9}


def compile_writer(dest: Path) -> Path:
    if not GCC:
        raise SystemExit("bench/logs.py needs gcc (apt-get install gcc libc6-dev) to build its static writer")
    src = dest / "logwriter.c"
    src.write_text(WRITER_C)
    subprocess.run([GCC, "-O2", "-static", "-o", str(dest / "logwriter"), str(src)], check=True)
    return dest / "logwriter"


def berth_cgroup_parents() -> set[str]:
    from workers.engine.runtime.cgroups import Cgroup

    return {d for d in Cgroup.for_path("/berth").dirs.values() if os.path.isdir(d)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-lines", type=int, default=500)
    ap.add_argument("--flood-lines", type=int, default=500_000)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--skip-conmon", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (containers)")
    base = Path(tempfile.mkdtemp(prefix="bl-", dir="/tmp"))  # short: the monitor socket path
    parents_before = berth_cgroup_parents()
    web = berth = quiet = conmon = None
    try:
        wdir = base / "w"
        wdir.mkdir()
        writer = compile_writer(wdir)
        web = Web(base)
        berth = BerthHost(base / "h1", wdir, web.redis_url)
        quiet = BerthHost(base / "h2", wdir, None)
        conmon = ConmonHost(base / "cm", writer) if CONMON and not args.skip_conmon else None
        n = args.latency_lines
        print(f"Logs benchmark: {os.cpu_count()} CPUs, kernel {os.uname().release}; Berth monitor + Berth runtime, "
              f"Redis sink -> {asgi_name()} (webapp.asgi) -> WebSocket client" + ("; conmon " + subprocess.run(
                  [CONMON, "--version"], capture_output=True, text=True).stdout.split()[2] + " + runc" if conmon else ""))

        print(f"\n1. Latency, {n} lines, each stamped inside the container just before write(2)")
        rows = []
        for label, every in (("sparse (1 line / 100 ms)", 100_000), ("100 lines/s", 10_000)):
            r = latency_berth(web, berth, n, every)
            rows.append((label, r))
            print(f"  {label:26} write -> WebSocket client  p50 {ms(pct(r['ws'], 50))}  p99 {ms(pct(r['ws'], 99))}"
                  f"  ({r['ws_count']} lines in {r['messages']} messages)")
            print(f"  {'':26} write -> Berth monitor     p50 {ms(pct(r['reader'], 50))}  p99 {ms(pct(r['reader'], 99))}")
        if conmon:
            recs = conmon.run(["paced", str(n), "10000"])
            lat = [rec - wrote for wrote, rec in lat_lines(recs).values()]
            assert len(lat) == n
            berth_reader = rows[1][1]["reader"]
            print(f"  {'100 lines/s':26} write -> conmon            p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}"
                  f"  (Berth monitor / conmon: p50 x{pct(berth_reader, 50) / pct(lat, 50):.2f},"
                  f" p99 x{pct(berth_reader, 99) / pct(lat, 99):.2f})")

        fl = args.flood_lines
        print(f"\n2. Flood: {fl:,} lines of {len('flood 000000000 ') + len(FLOOD_TEXT)} bytes as fast as the pipe "
              "takes them; every line checked on disk, in order")
        results = [("Berth, Redis sink + WebSocket client", flood_berth(web, berth, fl)),
                   ("Berth, no Redis sink", flood_berth(None, quiet, fl))]
        if conmon:
            results.append(("conmon + runc (k8s-file)", flood_conmon(conmon, fl)))
        ref = results[-1][1]["lines"] / results[-1][1]["seconds"] if conmon else None
        for label, r in results:
            rate = r["lines"] / r["seconds"]
            extra = f"  x{rate / ref:.2f} of conmon" if ref else ""
            ws = (f"; WebSocket: {r['sent']:,} lines sent, {r['dropped']:,} told dropped (web side and monitor), "
                  f"{r['sampled']} sampled messages of {r['messages']}") if "sent" in r else ""
            print(f"  {label:38} {rate:>10,.0f} lines/s on disk, none lost{extra}{ws}")

        total = args.rate * args.seconds
        print(f"\n3. Sustained: {args.rate:,} lines/s for {args.seconds} s ({total:,} lines)")
        sus = [("Berth, Redis sink + WebSocket client", flood_berth(web, berth, total, args.rate))]
        if conmon:
            sus.append(("conmon + runc (k8s-file)", flood_conmon(conmon, total, args.rate)))
        for label, r in sus:
            ws = (f"; WebSocket: {r['sent']:,} sent + {r['dropped']:,} told dropped (web side and monitor) = "
                  f"{r['sent'] + r['dropped']:,}") if "sent" in r else ""
            print(f"  {label:38} writer achieved {r['lines'] / r['writer_seconds']:,.0f} lines/s, "
                  f"last line on disk {r['lag'] * 1000:.0f} ms after the writer finished, all {r['lines']:,} on disk{ws}")
        return 0
    finally:
        for thing in (berth, quiet, conmon, web):
            if thing is not None:
                thing.close()
        shutil.rmtree(base, ignore_errors=True)
        for d in berth_cgroup_parents() - parents_before:  # the runtime's shared /berth parent, if we made it
            with contextlib.suppress(OSError):
                os.rmdir(d)


if __name__ == "__main__":
    sys.exit(main())
