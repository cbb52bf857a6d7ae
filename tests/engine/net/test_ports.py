"""Published ports and the host's own services: real DNAT, real sockets on the host."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from tests.engine.net.conftest import bridges, firewall_rules_mentioning, netns_mounts_under, ns_of, run_out
from tests.engine.net.frames import send_udp_frame
from workers.engine.net import PortTaken
from workers.engine.net.ports import probe

SLEEP = ["sleep", "300"]
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]


@contextlib.contextmanager
def host_http_server(host: str = "127.0.0.1") -> Iterator[int]:
    """A host service on loopback (stands for the control plane's Redis or web server)."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-secret")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer((host, 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def test_published_port_answers_the_host_and_another_network(mgr):
    mgr.net.create("pa", subnet="10.231.10.0/24")
    mgr.net.create("pb", subnet="10.231.11.0/24")
    mgr.create("busybox", name="other", command=SLEEP, networks=["pb"])
    mgr.start("other")  # pb's bridge (and its gateway address on the host) exists from here
    port = probe("127.0.0.1", 0, "tcp")
    web = mgr.create("busybox", name="web", command=HTTPD, networks=["pa"],
                     ports=["80", f"10.231.11.1:{port}:80"])
    mgr.start("web")
    maps = mgr.inspect("web")["network"]["ports"]
    local = next(m for m in maps if m["host_ip"] == "127.0.0.1")
    assert local["container_port"] == 80 and local["host_port"] > 0  # random host port, loopback by default
    body = urllib.request.urlopen(f"http://127.0.0.1:{local['host_port']}/hostname", timeout=10).read()
    assert body.decode().strip() == web["id"][:12]
    code, out = run_out(mgr, "other", ["timeout", "5", "wget", "-qO-", f"http://10.231.11.1:{port}/hostname"])
    assert code == 0 and out.strip() == web["id"][:12]


def test_published_udp_port(mgr):
    mgr.net.create("udp", subnet="10.231.12.0/24")
    mgr.create("busybox", name="u", command=SLEEP, networks=["udp"], ports=["127.0.0.1::5353/udp"])
    mgr.start("u")
    # an echo server in the container's namespace (busybox has no UDP server); the path is the container's
    echo = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\n"
            "print('ready',flush=True)\nd,a=s.recvfrom(100)\ns.sendto(b'echo:'+d,a)\n")
    ns = ns_of(mgr, "u")
    srv = subprocess.Popen(["nsenter", f"--net={ns}", sys.executable, "-c", echo], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        host_port = mgr.inspect("u")["network"]["ports"][0]["host_port"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(b"hi", ("127.0.0.1", host_port))
            assert s.recvfrom(100)[0] == b"echo:hi"
    finally:
        srv.kill()
        srv.wait()


def test_port_taken_on_the_host_is_refused_at_create_and_nothing_is_left(mgr):
    mgr.net.create("busy", subnet="10.231.13.0/24")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortTaken) as exc:
            mgr.create("busybox", name="clash", command=HTTPD, networks=["busy"], ports=[f"{port}:80"])
        assert exc.value.field == "ports" and str(port) in str(exc.value)
    assert mgr.list() == []
    assert mgr.net.store.get("busy")["allocations"] == {}
    assert list((mgr.root / "net" / "containers").iterdir()) == []


def test_port_taken_before_start_is_refused_and_nothing_is_set_up(mgr):
    net = mgr.net.create("late", subnet="10.231.14.0/24")
    port = probe("127.0.0.1", 0, "tcp")
    info = mgr.create("busybox", name="late", command=HTTPD, networks=["late"], ports=[f"{port}:80"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(PortTaken):
            mgr.start("late")
        assert mgr.inspect("late")["state"] == "created"
        assert net["bridge"] not in bridges()
        assert netns_mounts_under(mgr.root) == []
        assert firewall_rules_mentioning(info["id"], "10.231.14.") == []
    mgr.start("late")  # the port is free again
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10).status == 200


def test_two_containers_cannot_publish_the_same_port(mgr):
    mgr.net.create("dup", subnet="10.231.15.0/24")
    port = probe("127.0.0.1", 0, "tcp")
    first = mgr.create("busybox", name="one", command=HTTPD, networks=["dup"], ports=[f"{port}:80"])
    with pytest.raises(PortTaken) as exc:
        mgr.create("busybox", name="two", command=HTTPD, networks=["dup"], ports=[f"{port}:80"])
    assert first["id"][:12] in str(exc.value)


def test_container_cannot_reach_host_loopback_services_through_its_gateway(mgr):
    mgr.net.create("lo1", subnet="10.231.16.0/24")
    mgr.create("busybox", name="nosy", command=SLEEP, networks=["lo1"])
    mgr.start("nosy")
    with host_http_server() as port:
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"host-secret"  # control
        for url in (f"http://10.231.16.1:{port}/", f"http://127.0.0.1:{port}/"):
            code, out = run_out(mgr, "nosy", ["timeout", "3", "wget", "-qO-", url])
            assert code != 0 and "host-secret" not in out


def test_hand_made_frame_to_127_0_0_1_from_a_container_is_dropped(mgr):
    """CVE-2020-8558's pattern: netavark sets route_localnet on the bridge (for published 127.0.0.1 ports),
    so a frame a container crafts with CAP_NET_RAW (in Docker's default set) to the gateway's MAC with
    destination 127.0.0.1 would reach the host's loopback services. Sent from the container's namespace."""
    net = mgr.net.create("raw", subnet="10.231.17.0/24")
    mgr.create("busybox", name="raw", command=SLEEP, networks=["raw"])
    mgr.start("raw")
    view = mgr.inspect("raw")["network"]
    gw_mac = open(f"/sys/class/net/{net['bridge']}/address").read().strip().replace(":", "")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim:
        victim.bind(("127.0.0.1", 0))
        victim.settimeout(2)  # a bound on how long we listen for the packet, not a synchronisation
        ns = ns_of(mgr, "raw")
        send_udp_frame(ns, dst_mac=gw_mac, src_mac=view["mac"], src_ip=view["ip"], dst_ip="127.0.0.1",
                       port=victim.getsockname()[1])
        with pytest.raises(TimeoutError):
            victim.recvfrom(100)
