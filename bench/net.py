"""Networking benchmark (issue #13): data plane throughput and the time networking adds to a start.

    sudo .venv/bin/python bench/net.py [--seconds 3] [--runs 20] [--skip-podman]

- TCP throughput (iperf3, Debian's) between two containers on one Berth bridge network, against the floor:
  two plain network namespaces joined by one veth pair. iperf3 runs from the host's binary inside each
  container's network namespace (nsenter): what is measured is the data plane, not the image. Beside it: two
  namespaces on a bare Linux bridge (what bridging itself costs on this host) and two podman containers on
  netavark's default bridge.
- host -> published port (127.0.0.1:P, DNAT by netavark's rules) against host -> the container's own address.
- HTTP requests/s (busybox httpd in the container, a keep-alive-less Python client on the host), published
  against direct.
- Start overhead: median ContainerManager.start of a `sleep` container on a user bridge network (DNS, as
  Docker's user networks), on one without DNS, with `none`, and without any networking (the runtime's own
  namespace with lo only); podman with netavark beside it when podman runs here: `podman start` with
  --network bridge (podman's default network: no DNS, no isolation), on a network made with DNS and
  `--opt isolate=true` (like for like: every Berth network has DNS and is kept apart from the others, by
  Berth's own nft rule since netavark's isolation was measured out of the start path), and none. Podman's network configs go
  to its own --network-config-dir, never /etc/containers/networks.
Everything lives in its own state root and subnets 10.231.200-204.0/24 and is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.engine.containers import ContainerManager  # noqa: E402
from workers.engine.images.base import ensure_base_images  # noqa: E402
from workers.engine.images.store import ImageStore  # noqa: E402
from workers.engine.net import netns  # noqa: E402


def iperf(server_ns: str | None, client_ns: str | None, target: str, seconds: float, port: int = 5201) -> float:
    """Gbit/s of one iperf3 TCP run; a namespace None is the host's."""
    def wrap(ns, cmd):
        return (["nsenter", f"--net={ns}"] if ns else []) + cmd
    srv = subprocess.Popen(wrap(server_ns, ["iperf3", "-s", "-1", "-p", str(port)]), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # the server needs a moment to listen; the client retries until it connects
            out = subprocess.run(wrap(client_ns, ["iperf3", "-c", target, "-p", str(port), "-t", str(seconds), "-J"]),
                                 capture_output=True, text=True)
            got = _gbps(out)
            if got is not None:
                return got
            time.sleep(0.05)
        raise RuntimeError(out.stdout[-500:] + out.stderr[-500:])
    finally:
        srv.kill()
        srv.wait()


def _gbps(out: subprocess.CompletedProcess) -> float | None:
    """Gbit/s received of an iperf3 -J run, None when it did not connect (the server not listening yet)."""
    try:
        return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError):
        return None


def http_rps(url: str, seconds: float) -> float:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        urllib.request.urlopen(url, timeout=5).read()
        n += 1
    return n / seconds


def veth_floor(tmp: Path, seconds: float) -> float:
    a, b = tmp / "floor-a", tmp / "floor-b"
    netns.create(a)
    netns.create(b)
    try:
        subprocess.run(["ip", "link", "add", "bfl0", "type", "veth", "peer", "name", "bfl1"], check=True)
        for dev, ns, ip in (("bfl0", a, "10.231.202.1/24"), ("bfl1", b, "10.231.202.2/24")):
            subprocess.run(["ip", "link", "set", dev, "netns", str(ns)], check=True)
            subprocess.run(["nsenter", f"--net={ns}", "ip", "addr", "add", ip, "dev", dev], check=True)
            subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "set", dev, "up"], check=True)
        return iperf(str(a), str(b), "10.231.202.1", seconds)
    finally:
        netns.remove(a)
        netns.remove(b)


def plain_bridge(tmp: Path, seconds: float) -> float:
    """Two namespaces on one bare Linux bridge (no Berth, no rules of its own): what bridging costs on this host
    (with br_netfilter loaded, every bridged packet also walks the host's iptables FORWARD chain)."""
    a, b = tmp / "plain-a", tmp / "plain-b"
    netns.create(a)
    netns.create(b)
    try:
        subprocess.run(["ip", "link", "add", "bflbr", "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", "bflbr", "up"], check=True)
        for dev, ns, ip in (("bflp0", a, "10.231.205.1/24"), ("bflp1", b, "10.231.205.2/24")):
            subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", str(ns)],
                           check=True)
            subprocess.run(["ip", "link", "set", dev, "master", "bflbr", "up"], check=True)
            subprocess.run(["nsenter", f"--net={ns}", "ip", "addr", "add", ip, "dev", "eth0"], check=True)
            subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "set", "eth0", "up"], check=True)
        return iperf(str(a), str(b), "10.231.205.1", seconds)
    finally:
        netns.remove(a)
        netns.remove(b)
        subprocess.run(["ip", "link", "del", "bflbr"], capture_output=True)


def time_starts(m: ContainerManager, runs: int) -> dict[str, float]:
    m.net.create("benchnodns", subnet="10.231.203.0/24", dns=False)
    kinds = {"bridge": {"networks": ["bench"]}, "bridge, no DNS": {"networks": ["benchnodns"]},
             "none": {"networks": ["none"]}, "no networking": {}}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(runs):
        for kind, spec in kinds.items():
            c = m.create("busybox", name=f"s{i}-{kind.replace(' ', '').replace(',', '')}",
                         command=["sleep", "1000"], **spec)
            t = time.perf_counter()
            m.start(c["id"])
            times[kind].append((time.perf_counter() - t) * 1000)
            m.remove(c["id"], force=True)
    m.net.remove("benchnodns")
    return {k: statistics.median(v) for k, v in times.items()}


# podman's default rlimits are above what this host lets runc set (EPERM for RLIMIT_NOFILE)
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _podman(tmp: Path) -> tuple[list[str], str | None]:
    """podman with its own storage and network configs under tmp, and the busybox image `bbx` imported."""
    root = tmp / "podman"
    base = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--network-backend", "netavark",
            "--network-config-dir", str(root / "networks"), "--runtime", "runc"]
    tar = tmp / "busybox.tar"
    if not tar.exists():
        subprocess.run(["tar", "-C", "/", "-cf", str(tar), "bin/busybox"], check=True)
        imp = subprocess.run(base + ["import", "--change", "CMD /bin/busybox sleep 1000", str(tar), "bbx"],
                             capture_output=True, text=True)
        if imp.returncode != 0:
            return base, f"podman import failed: {imp.stderr.strip()[-300:]}"
    return base, None


def podman_c2c(tmp: Path, seconds: float) -> float | str:
    """iperf3 between two podman containers on one netavark bridge network (podman's default `bridge`)."""
    base, err = _podman(tmp)
    if err:
        return err
    made = []
    try:
        for name in ("pa", "pb"):
            r = subprocess.run(base + ["run", "-d", "--name", name, "--network", "bridge", *ULIMITS, "bbx",
                                       "/bin/busybox", "sleep", "1000"], capture_output=True, text=True)
            if r.returncode != 0:
                return f"podman run failed: {r.stderr.strip()[-300:]}"
            made.append(name)
        info = {n: json.loads(subprocess.run(base + ["inspect", n], capture_output=True, text=True, check=True)
                              .stdout)[0]["NetworkSettings"] for n in made}
        return iperf(info["pa"]["SandboxKey"], info["pb"]["SandboxKey"],
                     info["pa"]["Networks"]["podman"]["IPAddress"], seconds)
    finally:
        for name in made:
            subprocess.run(base + ["rm", "-f", "-t", "0", name], capture_output=True)


def podman_starts(tmp: Path, runs: int) -> dict[str, float] | str:
    base, err = _podman(tmp)
    if err:
        return err
    out: dict[str, list[float]] = {"bridge": [], "isolated, DNS": [], "none": []}
    net = subprocess.run(base + ["network", "create", "--subnet", "10.231.204.0/24", "--opt", "isolate=true",
                                 "benchiso"], capture_output=True, text=True)
    if net.returncode != 0:
        return f"podman network create failed: {net.stderr.strip()[-300:]}"
    nets = {"bridge": "bridge", "isolated, DNS": "benchiso", "none": "none"}
    try:
        for _ in range(runs):
            for kind in out:
                cid = subprocess.run(base + ["create", "--network", nets[kind], *ULIMITS, "bbx", "/bin/busybox",
                                             "sleep", "1000"],
                                     capture_output=True, text=True)
                if cid.returncode != 0:
                    return f"podman create failed: {cid.stderr.strip()[-300:]}"
                t = time.perf_counter()
                r = subprocess.run(base + ["start", cid.stdout.strip()], capture_output=True, text=True)
                out[kind].append((time.perf_counter() - t) * 1000)
                if r.returncode != 0:
                    return f"podman start failed: {r.stderr.strip()[-300:]}"
                subprocess.run(base + ["rm", "-f", "-t", "0", cid.stdout.strip()], capture_output=True)
        return {k: statistics.median(v) for k, v in out.items()}
    finally:
        subprocess.run(base + ["network", "rm", "-f", "benchiso"], capture_output=True)
        subprocess.run(base + ["system", "reset", "-f"], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--many", type=int, default=0, help="also start this many containers on one network")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bnet", dir="/tmp"))
    ensure_base_images(ImageStore(tmp))
    m = ContainerManager(tmp, default_network=None)
    try:
        m.net.create("bench", subnet="10.231.200.0/24")
        ids = {}
        for name, cmd, ports in (("a", ["httpd", "-f", "-p", "80", "-h", "/etc"], ["5201", "80"]),
                                 ("b", ["sleep", "1000"], [])):
            ids[name] = m.create("busybox", name=name, command=cmd, networks=["bench"], ports=ports)["id"]
            m.start(name)
        ns = {k: str(tmp / "net" / "ns" / v) for k, v in ids.items()}
        a = m.inspect("a")["network"]
        pub = {p["container_port"]: p["host_port"] for p in a["ports"]}
        floor = veth_floor(tmp, args.seconds)
        plain = plain_bridge(tmp, args.seconds)
        c2c = iperf(ns["a"], ns["b"], a["ip"], args.seconds)
        direct = iperf(ns["a"], None, a["ip"], args.seconds)
        published = iperf_published(ns["a"], pub[5201], args.seconds)
        rps_direct = http_rps(f"http://{a['ip']}/hostname", args.seconds)
        rps_pub = http_rps(f"http://127.0.0.1:{pub[80]}/hostname", args.seconds)
        print(f"TCP throughput, iperf3 {args.seconds:g} s each (Gbit/s):")
        print(f"  veth floor (2 namespaces, 1 veth pair)   {floor:8.2f}")
        print(f"  2 namespaces on a bare Linux bridge      {plain:8.2f}   x floor {plain / floor:.2f}")
        print(f"  container <-> container (Berth bridge)   {c2c:8.2f}   x floor {c2c / floor:.2f}")
        print(f"  host -> container IP (direct)            {direct:8.2f}")
        print(f"  host -> 127.0.0.1 published port         {published:8.2f}   x direct {published / direct:.2f}")
        print(f"HTTP requests/s (busybox httpd, one connection per request): direct {rps_direct:.0f}, "
              f"published {rps_pub:.0f} (x {rps_pub / rps_direct:.2f})")
        for name in ("a", "b"):
            m.remove(name, force=True)
        starts = time_starts(m, args.runs)
        print(f"Start (median of {args.runs}, ms): " + ", ".join(f"{k} {v:.1f}" for k, v in starts.items())
              + f"; networking adds {starts['bridge'] - starts['no networking']:.1f} ms (bridge), "
              f"over none: {starts['bridge'] - starts['none']:.1f} (bridge), "
              f"{starts['bridge, no DNS'] - starts['none']:.1f} (no DNS)")
        if args.many:
            many(m, args.many)
        if not args.skip_podman:
            pod_c2c = podman_c2c(tmp, args.seconds)
            print(f"podman: {pod_c2c}" if isinstance(pod_c2c, str) else
                  f"  container <-> container (podman, netavark bridge) {pod_c2c:8.2f}   x floor {pod_c2c / floor:.2f}")
            pod = podman_starts(tmp, args.runs)
            if isinstance(pod, str):
                print(f"podman: {pod}")
            else:
                print(f"podman start (median of {args.runs}, ms): " + ", ".join(f"{k} {v:.1f}" for k, v in pod.items())
                      + f"; networking adds over none: {pod['bridge'] - pod['none']:.1f} ms (default bridge), "
                      f"{pod['isolated, DNS'] - pod['none']:.1f} (isolated, DNS)")
    finally:
        for c in m.list():
            with contextlib.suppress(Exception):
                m.remove(c["id"], force=True)
        for name in ("bench", "benchnodns", "crowd"):
            with contextlib.suppress(Exception):
                m.net.remove(name, force=True)
        from tests.engine.containers.conftest import teardown_root
        teardown_root(tmp)
    return 0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def many(m: ContainerManager, n: int) -> None:
    """n `sleep` containers on one DNS-enabled network: start times, and the memory networking keeps
    (aardvark-dns is the only resident process of the data plane)."""
    m.net.create("crowd", subnet="10.231.201.0/24")
    times = []
    for i in range(n):
        c = m.create("busybox", name=f"crowd{i}", command=["sleep", "1000"], networks=["crowd"])
        t = time.perf_counter()
        m.start(c["id"])
        times.append((time.perf_counter() - t) * 1000)
    pid = int((m.root / "net" / "run" / "aardvark-dns" / "aardvark.pid").read_text())
    print(f"{n} containers on one network: start median {statistics.median(times):.1f} ms, first {times[0]:.1f}, "
          f"last {times[-1]:.1f}; aardvark-dns RSS {_rss_kib(pid) / 1024:.1f} MiB")
    for i in range(n):
        m.remove(f"crowd{i}", force=True)
    m.net.remove("crowd")


def iperf_published(server_ns: str, host_port: int, seconds: float) -> float:
    """iperf3 server on 5201 in the container, client on the host to 127.0.0.1:<published port>."""
    srv = subprocess.Popen(["nsenter", f"--net={server_ns}", "iperf3", "-s", "-1", "-p", "5201"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(host_port), "-t", str(seconds), "-J"],
                                 capture_output=True, text=True)
            got = _gbps(out)
            if got is not None:
                return got
            time.sleep(0.05)
        raise RuntimeError(out.stdout[-500:])
    finally:
        srv.kill()
        srv.wait()


if __name__ == "__main__":
    sys.exit(main())
