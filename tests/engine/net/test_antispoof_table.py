"""The anti-spoofing table keyed by link group (unique per veth: its index above GROUP_BASE): made once, older
Berths' tables (keyed by name, by index) carried over, entries of links gone swept. Real nft tables under test
names (removed after), real veth pairs."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from workers.engine.net import antispoof

# older Berths' tables, as they made them: sets keyed by interface name, or by interface index
OLD_RULESET = """
table bridge {t} {{
  set ports {{ type {k}; }}
  set ip_ok {{ type {k} . ipv4_addr; }}
  set mac_ok {{ type {k} . ether_addr; }}
  chain prerouting {{
    type filter hook prerouting priority 0; policy accept;
    {m} @ports {m} . ether saddr != @mac_ok drop
  }}
}}
"""


def _nft(script: str) -> None:
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _table(name: str) -> dict | None:
    """{set name: sorted elements, "rules": count} of a bridge table, None when there is none."""
    proc = subprocess.run(["nft", "-j", "list", "table", "bridge", name], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    objs = json.loads(proc.stdout)["nftables"]
    out: dict = {o["set"]["name"]: sorted(json.dumps(e) for e in o["set"].get("elem", [])) for o in objs if "set" in o}
    out["rules"] = sum(1 for o in objs if "rule" in o)
    return out


@pytest.fixture
def tables(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:8]
    new, by_name, by_index = f"bthtest_new_{tag}", f"bthtest_name_{tag}", f"bthtest_index_{tag}"
    monkeypatch.setattr(antispoof, "TABLE", new)
    monkeypatch.setattr(antispoof, "OLD_TABLES", (by_name, by_index))
    monkeypatch.setattr(antispoof, "_ready", False)
    try:
        yield new, by_name, by_index
    finally:
        for t in (new, by_name, by_index):
            subprocess.run(["nft", "delete", "table", "bridge", t], capture_output=True)


@pytest.fixture
def veths():
    made: list[str] = []

    def add() -> tuple[str, int]:
        name = f"bths{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True,
                       capture_output=True)
        made.append(name)
        index = antispoof.link_index(name)
        assert index is not None
        return name, index

    try:
        yield add
    finally:
        for name in made:
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def _group_of(name: str) -> int:
    return int(Path(f"/sys/class/net/{name}/netdev_group").read_text())


def test_made_once_whatever_the_number_of_processes_that_ask(tables):
    new = tables[0]
    antispoof.ensure()
    assert _table(new) == {"ports": [], "ip_ok": [], "mac_ok": [], "rules": 4}
    antispoof._ready = False  # as in another process
    antispoof.ensure()
    assert _table(new)["rules"] == 4


def test_older_tables_keyed_by_name_or_by_index_are_carried_over_by_group_and_removed(tables, veths):
    new, by_name, by_index = tables
    (a, ia), (b, ib) = veths(), veths()
    _nft(OLD_RULESET.format(t=by_name, k="ifname", m="iifname"))
    _nft(f'add element bridge {by_name} ports {{ "{a}", "bthsgone0" }}\n'
         f'add element bridge {by_name} mac_ok {{ "{a}" . 02:00:00:00:00:01, "bthsgone0" . 02:00:00:00:00:02 }}\n'
         f'add element bridge {by_name} ip_ok {{ "{a}" . 10.231.99.2, "bthsgone0" . 10.231.99.3 }}\n')
    _nft(OLD_RULESET.format(t=by_index, k="iface_index", m="iif"))
    _nft(f"add element bridge {by_index} ports {{ {ib}, 99999 }}\n"
         f"add element bridge {by_index} mac_ok {{ {ib} . 02:00:00:00:00:0b, 99999 . 02:00:00:00:00:0c }}\n"
         f"add element bridge {by_index} ip_ok {{ {ib} . 10.231.99.11, 99999 . 10.231.99.12 }}\n")
    antispoof.ensure()
    assert _table(by_name) is None and _table(by_index) is None
    ga, gb = antispoof.group(ia), antispoof.group(ib)
    assert (_group_of(a), _group_of(b)) == (ga, gb)  # the links were given their groups
    listed = _table(new)
    assert listed["rules"] == 4
    assert listed["ports"] == sorted([json.dumps(ga), json.dumps(gb)])
    assert listed["mac_ok"] == sorted(json.dumps({"concat": [g, m]}) for g, m in ((ga, "02:00:00:00:00:01"),
                                                                              (gb, "02:00:00:00:00:0b")))
    assert listed["ip_ok"] == sorted(json.dumps({"concat": [g, i]}) for g, i in ((ga, "10.231.99.2"),
                                                                             (gb, "10.231.99.11")))


def test_allow_gives_the_link_its_group_and_keys_its_entries_by_it(tables, veths):
    new = tables[0]
    name, index = veths()
    antispoof.allow(index, "02:00:00:00:00:0a", "10.231.99.10")
    g = antispoof.group(index)
    assert _group_of(name) == g
    assert _table(new)["ports"] == [json.dumps(g)]
    assert _table(new)["mac_ok"] == [json.dumps({"concat": [g, "02:00:00:00:00:0a"]})]


def test_the_sweep_removes_the_entries_of_links_gone_and_keeps_the_others(tables, veths):
    new = tables[0]
    (_, kept), (gone, lost) = veths(), veths()
    antispoof.allow(kept, "02:00:00:00:00:0a", "10.231.99.10")
    antispoof.allow(lost, "02:00:00:00:00:0b", "10.231.99.11")
    subprocess.run(["ip", "link", "del", gone], check=True, capture_output=True)
    antispoof.forget_dead()
    g = antispoof.group(kept)
    listed = _table(new)
    assert listed["ports"] == [json.dumps(g)]
    assert listed["mac_ok"] == [json.dumps({"concat": [g, "02:00:00:00:00:0a"]})]
    assert listed["ip_ok"] == [json.dumps({"concat": [g, "10.231.99.10"]})]


def test_forget_takes_only_the_entries_of_its_link(tables, veths):
    new = tables[0]
    (_, ia), (_, ib) = veths(), veths()
    antispoof.allow(ia, "02:00:00:00:00:0a", "10.231.99.10")
    antispoof.allow(ib, "02:00:00:00:00:0b", "10.231.99.11")
    antispoof.forget(ia, "02:00:00:00:00:0a", "10.231.99.10")
    g = antispoof.group(ib)
    assert _table(new)["ports"] == [json.dumps(g)]
    assert _table(new)["mac_ok"] == [json.dumps({"concat": [g, "02:00:00:00:00:0b"]})]
