"""Bridge networks with real namespaces, bridges and packets: names, isolation, modes, teardown."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from tests.engine.net.conftest import (
    bridges,
    firewall_rules_mentioning,
    links,
    netavark_chains,
    netns_mounts_under,
    ns_of,
    ports_of,
    run_out,
)
from tests.engine.net.frames import send_udp_frame, udp_listener
from workers.engine.net import NetworkError, NetworkInUse, netavark, netns

SLEEP = ["sleep", "300"]
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]


def test_two_containers_reach_each_other_by_name_and_alias(mgr):
    mgr.net.create("app", subnet="10.231.1.0/24")
    mgr.create("busybox", name="web", command=HTTPD, networks=["app"], network_aliases=["www"])
    mgr.create("busybox", name="cli", command=SLEEP, networks=["app"])
    mgr.start("web")
    mgr.start("cli")
    assert run_out(mgr, "cli", ["ping", "-c1", "-W5", "web"])[0] == 0
    code, out = run_out(mgr, "cli", ["wget", "-qO-", "http://www/hostname"])
    assert code == 0 and out.strip() == mgr.inspect("web")["id"][:12]
    web = mgr.inspect("web")["network"]
    assert web["ip"].startswith("10.231.1.") and web["gateway"] == "10.231.1.1" and web["mac"]
    code, hosts = run_out(mgr, "cli", ["cat", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"])
    assert mgr.inspect("cli")["network"]["ip"] in hosts and "nameserver 10.231.1.1" in hosts


def test_networks_are_isolated(mgr):
    mgr.net.create("a", subnet="10.231.2.0/24")
    mgr.net.create("b", subnet="10.231.3.0/24")
    mgr.create("busybox", name="in-a", command=HTTPD, networks=["a"])
    mgr.create("busybox", name="in-b", command=SLEEP, networks=["b"])
    mgr.create("busybox", name="also-a", command=SLEEP, networks=["a"])
    for n in ("in-a", "in-b", "also-a"):
        mgr.start(n)
    ip_a = mgr.inspect("in-a")["network"]["ip"]
    assert run_out(mgr, "also-a", ["timeout", "3", "wget", "-qO-", f"http://{ip_a}/hostname"])[0] == 0  # the control
    assert run_out(mgr, "in-b", ["timeout", "3", "wget", "-qO-", f"http://{ip_a}/hostname"])[0] != 0
    assert run_out(mgr, "in-b", ["ping", "-c1", "-W2", ip_a])[0] != 0
    assert run_out(mgr, "in-b", ["nslookup", "in-a"])[0] != 0  # not in b's DNS either


def test_none_has_only_loopback(mgr):
    mgr.create("busybox", name="alone", command=SLEEP, networks=["none"])
    mgr.start("alone")
    code, out = run_out(mgr, "alone", ["ls", "/sys/class/net"])
    assert code == 0 and out.split() == ["lo"]
    assert mgr.inspect("alone")["network"]["ip"] is None


def test_host_mode_sees_host_interfaces(mgr):
    """The container is in the host's network namespace and lists the host's links. Other sessions on the
    machine add and remove veths at any time, so the host lists its links before, all along and after the
    container's listing: every link present in all of them must be seen (lo and the host's own interfaces
    among them), and none the host never had."""
    mgr.create("busybox", name="onhost", command=SLEEP, networks=["host"])
    mgr.start("onhost")
    code, ns = run_out(mgr, "onhost", ["readlink", "/proc/self/ns/net"])
    assert code == 0 and ns.strip() == os.readlink("/proc/self/ns/net")
    host = [set(os.listdir("/sys/class/net"))]
    done, got = threading.Event(), []
    lister = threading.Thread(target=lambda: (got.append(run_out(mgr, "onhost", ["ls", "/sys/class/net"])),
                                              done.set()))
    lister.start()
    while not done.wait(0.002):
        host.append(set(os.listdir("/sys/class/net")))
    lister.join()
    host.append(set(os.listdir("/sys/class/net")))
    code, out = got[0]
    always, ever, seen = set.intersection(*host), set.union(*host), set(out.split())
    assert code == 0 and {"lo"} < always <= seen <= ever, (seen, always, ever)


def test_container_mode_shares_the_namespace(mgr):
    mgr.net.create("share", subnet="10.231.4.0/24")
    mgr.create("busybox", name="srv", command=HTTPD, networks=["share"])
    mgr.start("srv")
    mgr.create("busybox", name="side", command=SLEEP, networks=["container:srv"])
    mgr.start("side")
    code, out = run_out(mgr, "side", ["wget", "-qO-", "http://127.0.0.1/hostname"])
    assert code == 0 and out.strip() == mgr.inspect("srv")["id"][:12]


def test_connect_and_disconnect_a_running_container(mgr):
    mgr.net.create("front", subnet="10.231.5.0/24")
    mgr.net.create("back", subnet="10.231.6.0/24")
    mgr.create("busybox", name="db", command=HTTPD, networks=["back"])
    mgr.create("busybox", name="app", command=SLEEP, networks=["front"])
    mgr.start("db")
    mgr.start("app")
    assert netns_mounts_under(mgr.root) == []  # a start takes the namespace's mount off the host's table
    assert run_out(mgr, "app", ["timeout", "3", "wget", "-qO-", "http://db/hostname"])[0] != 0
    view = mgr.net.connect(mgr.inspect("app")["id"], "back")
    assert netns_mounts_under(mgr.root) == []  # mounted again for the connect only
    assert set(view["networks"]) == {"front", "back"}
    assert run_out(mgr, "app", ["timeout", "3", "wget", "-qO-", "http://db/hostname"])[0] == 0
    code, out = run_out(mgr, "app", ["ls", "/sys/class/net"])
    assert set(out.split()) == {"lo", "eth0", "eth1"}
    back_ip = view["networks"]["back"]["ip"]
    mgr.net.disconnect(mgr.inspect("app")["id"], "back")
    code, out = run_out(mgr, "app", ["ls", "/sys/class/net"])
    assert set(out.split()) == {"lo", "eth0"}
    assert back_ip not in mgr.net.store.get("back")["allocations"]
    assert netns_mounts_under(mgr.root) == []


def _links_in(mgr, ref: str) -> set[str]:
    code, out = run_out(mgr, ref, ["ls", "/sys/class/net"])
    assert code == 0, out
    return set(out.split())


def test_a_connect_acts_only_in_the_namespace_its_container_started_in(mgr):
    """Its namespace is mounted again from the container's init, found by the pid in its record: a pid that is
    not the container's (here another tenant's container's init) is not used, and a namespace that is not the
    one the start left is refused; either way nothing appears in the other container."""
    mgr.net.create("own", subnet="10.231.32.0/24")
    mgr.net.create("extra", subnet="10.231.33.0/24")
    mgr.create("busybox", name="victim", command=SLEEP, networks=["own"])
    mine = mgr.create("busybox", name="mine", command=SLEEP, networks=["own"])["id"]
    mgr.start("victim")
    mgr.start("mine")
    victim_links = _links_in(mgr, "victim")
    assert victim_links == {"lo", "eth0"}

    record = mgr.root / "containers" / mine / "container.json"
    real = json.loads(record.read_text())
    record.write_text(json.dumps(real | {"pid": mgr.inspect("victim")["pid"]}))  # another container's process
    mgr.net.connect(mine, "extra")  # taken as a container that does not run: for its next start
    assert _links_in(mgr, "victim") == victim_links and netns_mounts_under(mgr.root) == []
    mgr.net.disconnect(mine, "extra")
    record.write_text(json.dumps(real))

    state = mgr.root / "net" / "containers" / mine / "net.json"
    kept = json.loads(state.read_text())
    other = os.stat(ns_of(mgr, "victim"))
    state.write_text(json.dumps(kept | {"ns": [other.st_dev, other.st_ino]}))  # as if its init moved there
    with pytest.raises(NetworkError, match="not in the network namespace it started in"):
        mgr.net.connect(mine, "extra")
    assert set(mgr.net.view(mine)["networks"]) == {"own"}  # refused whole: not kept for a later start either
    assert _links_in(mgr, "victim") == victim_links and netns_mounts_under(mgr.root) == []
    assert _links_in(mgr, "mine") == {"lo", "eth0"}

    state.write_text(json.dumps(kept))  # its own again: the connect works
    mgr.net.connect(mine, "extra")
    assert _links_in(mgr, "mine") == {"lo", "eth0", "eth1"} and _links_in(mgr, "victim") == victim_links


def test_remove_leaves_nothing_behind(mgr):
    net = mgr.net.create("tidy", subnet="10.231.7.0/24", labels={"team": "x"})
    assert net["labels"] == {"team": "x"}
    info = mgr.create("busybox", name="t1", command=HTTPD, networks=["tidy"], ports=["80"])
    mgr.create("busybox", name="t2", command=SLEEP, networks=["tidy"])
    mgr.start("t1")
    mgr.start("t2")
    assert net["bridge"] in bridges()
    veths = ports_of(net["bridge"])
    assert len(veths) == 2
    chains = netavark_chains("10.231.7.0/24")  # the nat chain and its port-forwarding twin
    mine = netavark.chain(netavark.vark_name(net))  # what a sweep looks for
    assert chains == {mine, mine.replace("NETAVARK-", "NETAVARK-DN-")}
    assert firewall_rules_mentioning(net["bridge"])  # its isolation entry (netavark's isolation rules before)
    assert firewall_rules_mentioning("10.231.7.", info["id"])
    assert netns_mounts_under(mgr.root) == []  # held by their processes, not by mounts on the host
    with pytest.raises(NetworkInUse):
        mgr.net.remove("tidy")
    mgr.remove("t1", force=True)
    mgr.remove("t2", force=True)
    assert net["bridge"] not in bridges()
    assert veths & links() == set()
    assert firewall_rules_mentioning("10.231.7.", info["id"], net["bridge"], *chains) == []
    assert netns_mounts_under(mgr.root) == []
    assert mgr.net.store.get("tidy")["allocations"] == {}
    assert list((mgr.root / "net" / "containers").iterdir()) == []
    mgr.net.remove("tidy")
    assert [n["name"] for n in mgr.net.list()] == []


def test_force_remove_disconnects_and_stop_tears_down(mgr):
    net = mgr.net.create("gone", subnet="10.231.8.0/24")
    mgr.create("busybox", name="g1", command=SLEEP, networks=["gone"])
    mgr.start("g1")
    mgr.stop("g1", timeout=0)
    assert net["bridge"] not in bridges() and netns_mounts_under(mgr.root) == []
    assert mgr.inspect("g1")["network"]["ip"] == "10.231.8.2"  # kept while the container exists
    mgr.start("g1")
    assert mgr.inspect("g1")["network"]["ip"] == "10.231.8.2"
    mgr.net.remove("gone", force=True)
    assert net["bridge"] not in bridges()
    assert mgr.inspect("g1")["network"]["networks"] == {}



def test_kill_tears_down_at_once_as_stop_does(mgr):
    """Found by `make soak`: a SIGKILL left the namespace and veth until the next supervise pass. No pass
    runs here: the kill itself must undo them (the address stays reserved, as after a stop)."""
    net = mgr.net.create("killed", subnet="10.231.9.0/24")
    mgr.create("busybox", name="k1", command=SLEEP, networks=["killed"])
    mgr.start("k1")
    veths = ports_of(net["bridge"])
    assert len(veths) == 1  # the control
    assert mgr.kill("k1")["state"] == "exited"
    assert netns_mounts_under(mgr.root) == [] and veths & links() == set()
    assert mgr.inspect("k1")["network"]["ip"] == "10.231.9.2"

def test_a_container_whose_namespace_went_first_is_still_torn_down(mgr):
    """A container's namespace gone before its teardown (a reboot, a state root unmounted under a crashed
    worker): netavark only removes a bridge and the network's chains when it deletes the container's interface
    first, so they stayed on the host for good (found: NETAVARK chains and isolation rules of bridges long
    gone, empty bth bridges). The teardown now hands netavark a stand-in namespace."""
    net = mgr.net.create("orphan", subnet="10.231.27.0/24")
    info = mgr.create("busybox", name="o1", command=HTTPD, networks=["orphan"], ports=["80"])
    mgr.start("o1")
    chains = netavark_chains("10.231.27.0/24")
    assert chains and firewall_rules_mentioning(net["bridge"]) and ports_of(net["bridge"])  # the control
    os.kill(mgr.inspect("o1")["pid"], signal.SIGKILL)
    netns.remove(mgr.root / "net" / "ns" / info["id"])  # unmounted: the namespace dies with its last process
    deadline = time.monotonic() + 30
    while ports_of(net["bridge"]):  # the kernel deletes the veth with the namespace, asynchronously
        assert time.monotonic() < deadline, "the veth outlived its namespace"
        time.sleep(0.05)
    mgr.remove("o1", force=True)
    assert net["bridge"] not in bridges()
    assert firewall_rules_mentioning("10.231.27.", info["id"], net["bridge"], *chains) == []


def test_a_sweep_removes_what_a_lost_container_left_of_its_network(mgr):
    """Neither the container's namespace nor its network state is left (a root half removed): nothing knows
    the attachment any more, yet the bridge and the network's rules are still on the host. A sweep (network
    rm, a worker's reconcile, a test's cleanup) has netavark tear the network down completely."""
    import shutil

    net = mgr.net.create("lost", subnet="10.231.28.0/24")
    info = mgr.create("busybox", name="l1", command=SLEEP, networks=["lost"], ports=["80"])  # its DNAT rules too
    mgr.start("l1")
    chains = netavark_chains("10.231.28.0/24")
    assert chains and firewall_rules_mentioning(net["bridge"])  # the control
    os.kill(mgr.inspect("l1")["pid"], signal.SIGKILL)
    netns.remove(mgr.root / "net" / "ns" / info["id"])
    shutil.rmtree(mgr.root / "net" / "containers" / info["id"])
    deadline = time.monotonic() + 30
    while ports_of(net["bridge"]):
        assert time.monotonic() < deadline, "the veth outlived its namespace"
        time.sleep(0.05)
    assert net["bridge"] in bridges()  # what was leaking: an empty bridge and its rules
    assert mgr.net.sweep() == ["lost"]
    assert net["bridge"] not in bridges()
    assert firewall_rules_mentioning("10.231.28.", net["bridge"], *chains) == []


def test_internal_network_has_no_way_out(mgr):
    mgr.net.create("inside", subnet="10.231.22.0/24", internal=True)
    mgr.net.create("outside", subnet="10.231.23.0/24")
    mgr.create("busybox", name="sealed", command=SLEEP, networks=["inside"])
    mgr.create("busybox", name="peer", command=SLEEP, networks=["inside"])
    mgr.create("busybox", name="free", command=HTTPD, networks=["outside"])
    for n in ("sealed", "peer", "free"):
        mgr.start(n)
    assert run_out(mgr, "sealed", ["ping", "-c1", "-W5", "peer"])[0] == 0  # inside works
    code, routes = run_out(mgr, "sealed", ["ip", "route"])
    assert code == 0 and "default" not in routes
    free_ip = mgr.inspect("free")["network"]["ip"]
    assert run_out(mgr, "sealed", ["timeout", "3", "wget", "-qO-", f"http://{free_ip}/hostname"])[0] != 0


def test_a_restarted_worker_keeps_running_containers_reachable(mgr):
    from workers.engine.containers import ContainerManager

    mgr.net.create("keep", subnet="10.231.24.0/24")
    mgr.create("busybox", name="k1", command=HTTPD, networks=["keep"], ports=["80"])
    mgr.create("busybox", name="k2", command=SLEEP, networks=["keep"])
    mgr.start("k1")
    mgr.start("k2")
    again = ContainerManager(mgr.root, default_network="bridge")  # what a worker does when it starts again
    again.reconcile()
    assert run_out(again, "k2", ["wget", "-qO-", "http://k1/hostname"])[0] == 0
    port = again.inspect("k1")["network"]["ports"][0]["host_port"]
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10).status == 200
    assert sorted(again.net.store.get("keep")["allocations"]) == ["10.231.24.2", "10.231.24.3"]


def test_a_container_cannot_send_with_a_neighbours_address(mgr):
    """IP spoofing with CAP_NET_RAW: C writes a frame to A claiming to come from B. With the control (C's own
    address) A hears it; with B's address it is dropped at the bridge."""
    mgr.net.create("spoof", subnet="10.231.25.0/24")
    ids = {n: mgr.create("busybox", name=n, command=SLEEP, networks=["spoof"])["id"] for n in ("a", "b", "c")}
    for n in ids:
        mgr.start(n)
    net = {n: mgr.inspect(n)["network"] for n in ids}
    ns = {n: ns_of(mgr, n) for n in ids}
    for src_ip, heard in ((net["c"]["ip"], True), (net["b"]["ip"], False)):
        listener = udp_listener(ns["a"], 9999, wait=2)  # a bound on the wait for a packet, not a sync
        try:
            send_udp_frame(ns["c"], dst_mac=net["a"]["mac"], src_mac=net["c"]["mac"], src_ip=src_ip,
                           dst_ip=net["a"]["ip"], port=9999)
            line = listener.stdout.readline().strip()
        finally:
            listener.kill()
            listener.wait()
        assert (line == f"{src_ip} spoofed") if heard else (line == "nothing")


def _host_veth(mgr, ref: str) -> str:
    st = mgr.net._load(mgr.inspect(ref)["id"])
    return next(iter(st["attachments"].values()))["veth"]


def _heard(mgr, sender: str, *, src_mac: str, src_ip: str) -> bool:
    """Whether a UDP frame `sender` writes with these source addresses reaches the container `listener`."""
    to = mgr.inspect("listener")["network"]
    listener = udp_listener(ns_of(mgr, "listener"), 9999, wait=2)  # a bound on the wait for a packet, not a sync
    try:
        send_udp_frame(ns_of(mgr, sender), dst_mac=to["mac"], src_mac=src_mac, src_ip=src_ip, dst_ip=to["ip"],
                       port=9999)
        line = listener.stdout.readline().strip()
    finally:
        listener.kill()
        listener.wait()
    assert line in (f"{src_ip} spoofed", "nothing"), line
    return line != "nothing"


def test_a_veth_name_given_again_carries_nothing_of_the_dead_container_that_had_it(mgr):
    """The attack: a container dies (its veth goes with its namespace) and another starts before the dead
    one's teardown runs; netavark gives the new one the dead one's host veth name. Entries keyed by that name
    let the new container send as the dead one, and the dead one's late teardown deleted the new one's entry
    in the filtered ports: it then sent as any neighbour. Each frame below is dropped; the control is heard."""
    mgr.net.create("reuse", subnet="10.231.27.0/24")
    for n in ("listener", "victim", "dead"):
        mgr.create("busybox", name=n, command=SLEEP, networks=["reuse"])
        mgr.start(n)
    name, dead = _host_veth(mgr, "dead"), mgr.inspect("dead")["network"]
    os.kill(mgr.inspect("dead")["pid"], signal.SIGKILL)  # no stop: nothing tears its networking down yet
    deadline = time.monotonic() + 30
    while os.path.exists(f"/sys/class/net/{name}") and time.monotonic() < deadline:
        time.sleep(0.05)
    mgr.create("busybox", name="attacker", command=SLEEP, networks=["reuse"])
    mgr.start("attacker")
    assert _host_veth(mgr, "attacker") == name  # the precondition of the attack: the name given again
    own, victim = mgr.inspect("attacker")["network"], mgr.inspect("victim")["network"]
    assert _heard(mgr, "attacker", src_mac=own["mac"], src_ip=own["ip"])  # the control
    assert not _heard(mgr, "attacker", src_mac=dead["mac"], src_ip=dead["ip"])
    mgr.supervise()  # the dead container's teardown, after the attacker's setup
    assert mgr.inspect("dead")["state"] == "exited"
    assert _heard(mgr, "attacker", src_mac=own["mac"], src_ip=own["ip"])
    assert not _heard(mgr, "attacker", src_mac=own["mac"], src_ip=victim["ip"])


def test_a_container_that_exits_by_itself_gives_back_its_interfaces_at_the_next_supervise(mgr):
    net = mgr.net.create("brief", subnet="10.231.26.0/24")
    info = mgr.create("busybox", name="once", command=["true"], networks=["brief"])
    mgr.start("once")
    mgr.wait("once", timeout=30)
    mgr.supervise()
    assert net["bridge"] not in bridges() and netns_mounts_under(mgr.root) == []
    assert firewall_rules_mentioning(info["id"], "10.231.26.") == []
    assert mgr.net.store.get("brief")["allocations"] == {"10.231.26.2": info["id"]}  # kept until removed


def test_networks_stay_apart_after_a_third_networks_last_container_stops(mgr):
    """netavark 1.4 dropped its isolation jump when any network was fully torn down (networks then reached
    each other); Berth's isolation (guard.py) does not depend on what a teardown of another network does."""
    for n, s in (("a", 45), ("b", 46), ("c", 47)):
        mgr.net.create(n, subnet=f"10.231.{s}.0/24")
    mgr.create("busybox", name="in-a", command=HTTPD, networks=["a"])
    mgr.create("busybox", name="in-b", command=SLEEP, networks=["b"])
    mgr.create("busybox", name="in-c", command=SLEEP, networks=["c"])
    for n in ("in-a", "in-b", "in-c"):
        mgr.start(n)
    ip_a = mgr.inspect("in-a")["network"]["ip"]
    fetch = ["timeout", "3", "wget", "-qO-", f"http://{ip_a}/hostname"]
    assert run_out(mgr, "in-b", fetch)[0] != 0
    mgr.stop("in-c", timeout=0)  # c's last container: netavark's complete teardown of c
    assert run_out(mgr, "in-b", fetch)[0] != 0
    mgr.create("busybox", name="also-a", command=SLEEP, networks=["a"])
    mgr.start("also-a")
    assert run_out(mgr, "also-a", fetch)[0] == 0  # the control: a's own containers still reach it
