"""Two hosts on one machine (two state roots, as the multi-host tests run them): each host's networks keep
their own firewall chains. netavark names a network's iptables chains from a hash of the name it is given;
when both hosts gave it `app`, the last teardown on one host deleted rules the other's containers still used
(CI: "unable to append rule '-d 10.89.17.0/24 -j ACCEPT' to table 'nat': No chain/target/match")."""

from __future__ import annotations

import ipaddress
import re
import subprocess

import pytest

from tests.engine.net.conftest import (
    bridges,
    firewall_rules_mentioning,
    manager_on_own_root,
    netns_mounts_under,
    run_out,
)
from workers.engine.net import store
from workers.engine.net.errors import InvalidConfig, NetworkError

SLEEP = ["sleep", "300"]


ELEMENT = re.compile(r'"[^"]+" \. [0-9a-f.:]+')


def rules(subnet_prefix: str) -> list[str]:
    """The firewall rules naming a subnet, without their packet counters (which move with traffic). Elements of
    the machine's shared nft sets count one by one: nft prints several to a line, its commas and braces placed
    by whichever other hosts' elements sit next to them (run 17: a line changed when the other host's went)."""
    out = []
    for r in firewall_rules_mentioning(subnet_prefix):
        if "elements = {" in r or r.strip().startswith('"'):
            out += [e for e in ELEMENT.findall(r) if subnet_prefix in e]
        else:
            out.append(re.sub(r"counter packets \d+ bytes \d+ ", "", r))
    return sorted(out)


def chains_of(subnet: str) -> set[str]:
    """netavark's per-network chains (NETAVARK-<hash>) that hold a rule for traffic to `subnet`; its
    NETAVARK_FORWARD chain is one per machine by design."""
    text = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {ln.split()[1] for ln in text.splitlines()
            if ln.startswith("-A NETAVARK-") and f"-d {subnet} " in ln}


@pytest.fixture
def other(tmp_path_factory: pytest.TempPathFactory):
    yield from manager_on_own_root(tmp_path_factory, "nt-other")


def test_a_network_of_the_same_name_on_another_host_keeps_its_own_rules(mgr, other):
    mgr.net.create("app", subnet="10.231.40.0/24")
    other.net.create("app", subnet="10.231.41.0/24")
    mgr.create("busybox", name="a1", command=SLEEP, networks=["app"])
    other.create("busybox", name="b1", command=SLEEP, networks=["app"])
    mgr.start("a1")
    other.start("b1")
    # netavark adds and deletes a network's chain by the name it was given, and checks for the chain apart
    # from appending to it: a chain two hosts share can be deleted by one between the other's check and
    # append (the CI failure). So no chain may carry both hosts' subnets.
    assert chains_of("10.231.40.0/24") and not chains_of("10.231.40.0/24") & chains_of("10.231.41.0/24")
    ours = rules("10.231.40.")
    assert any("-j ACCEPT" in r for r in ours) and rules("10.231.41."), ours

    other.stop("b1", timeout=0)  # the other host's last container on its `app`: netavark's full teardown there
    assert not rules("10.231.41.")
    assert rules("10.231.40.") == ours
    mgr.create("busybox", name="a2", command=SLEEP, networks=["app"])
    mgr.start("a2")  # appends to this host's chain, which must still be there
    ip = mgr.inspect("a1")["network"]["ip"]
    assert run_out(mgr, "a2", ["ping", "-c1", "-W5", ip])[0] == 0


def test_a_subnet_another_host_routes_is_skipped_and_refused(mgr, other, monkeypatch):
    """Neither host sees the other's records, only the machine's routes: the second host's default network
    goes around the first's bridge, and a subnet given by hand that overlaps it is refused unless asked for."""
    mgr.create("busybox", name="a1", command=SLEEP)  # the first host's default `bridge`, up with its route
    mgr.start("a1")
    routed = ipaddress.ip_network(mgr.net.store.get("bridge")["subnet"])
    # The default pool narrowed to that one subnet: without the route check the second host would take it.
    monkeypatch.setattr(store, "DEFAULT_POOL", routed)
    theirs = ipaddress.ip_network(other.net.store.ensure_default()["subnet"])
    assert not theirs.overlaps(routed), (theirs, routed)
    with pytest.raises(InvalidConfig, match=f"overlaps the route to {routed}") as e:
        other.net.create("given", subnet=str(routed))
    assert e.value.field == "subnet"
    assert other.net.create("given", subnet=str(routed), overlap_routes=True)["subnet"] == str(routed)


def test_a_subnet_another_host_took_meanwhile_is_refused_at_start(mgr, other):
    """Both hosts made a network of one subnet before either had a container on it (no route yet to tell):
    the second to start one is refused, saying why, and nothing of it is left (its bridge would have shadowed
    half of the first's traffic)."""
    mgr.net.create("first", subnet="10.231.48.0/24")
    second = other.net.create("second", subnet="10.231.48.0/24")
    mgr.create("busybox", name="a1", command=SLEEP, networks=["first"])
    mgr.start("a1")
    other.create("busybox", name="b1", command=SLEEP, networks=["second"])
    with pytest.raises(NetworkError, match="10.231.48.0/24 is already routed"):
        other.start("b1")
    assert second["bridge"] not in bridges() and netns_mounts_under(other.root) == []
