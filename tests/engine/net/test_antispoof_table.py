"""The anti-spoofing table keyed by interface index: made once, an older Berth's name-keyed table carried over,
entries of links gone swept. Real nft tables under test names (removed after), real veth pairs."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from workers.engine.net import antispoof

# an older Berth's table, as it made it: sets keyed by interface name
OLD_RULESET = """
table bridge {t} {{
  set ports {{ type ifname; }}
  set ip_ok {{ type ifname . ipv4_addr; }}
  set mac_ok {{ type ifname . ether_addr; }}
  chain prerouting {{
    type filter hook prerouting priority 0; policy accept;
    iifname @ports iifname . ether saddr != @mac_ok drop
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
    new, old = f"bthtest_new_{tag}", f"bthtest_old_{tag}"
    monkeypatch.setattr(antispoof, "TABLE", new)
    monkeypatch.setattr(antispoof, "OLD_TABLE", old)
    monkeypatch.setattr(antispoof, "_ready", False)
    try:
        yield new, old
    finally:
        for t in (new, old):
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


def test_made_once_whatever_the_number_of_processes_that_ask(tables):
    new, _ = tables
    antispoof.ensure()
    assert _table(new) == {"ports": [], "ip_ok": [], "mac_ok": [], "rules": 4}
    antispoof._ready = False  # as in another process
    antispoof.ensure()
    assert _table(new)["rules"] == 4


def test_an_older_name_keyed_table_is_carried_over_by_index_and_removed(tables, veths):
    new, old = tables
    live, index = veths()
    _nft(OLD_RULESET.format(t=old))
    _nft(f'add element bridge {old} ports {{ "{live}", "bthsgone0" }}\n'
         f'add element bridge {old} mac_ok {{ "{live}" . 02:00:00:00:00:01, "bthsgone0" . 02:00:00:00:00:02 }}\n'
         f'add element bridge {old} ip_ok {{ "{live}" . 10.231.99.2, "bthsgone0" . 10.231.99.3 }}\n')
    antispoof.ensure()
    assert _table(old) is None
    listed = _table(new)
    assert listed["rules"] == 4
    # nft lists a live index by its link's name
    assert listed["ports"] == [json.dumps(live)]
    assert listed["mac_ok"] == [json.dumps({"concat": [live, "02:00:00:00:00:01"]})]
    assert listed["ip_ok"] == [json.dumps({"concat": [live, "10.231.99.2"]})]


def test_the_sweep_removes_the_entries_of_links_gone_and_keeps_the_others(tables, veths):
    new, _ = tables
    (keep, kept), (gone, lost) = veths(), veths()
    antispoof.allow(kept, "02:00:00:00:00:0a", "10.231.99.10")
    antispoof.allow(lost, "02:00:00:00:00:0b", "10.231.99.11")
    subprocess.run(["ip", "link", "del", gone], check=True, capture_output=True)
    assert json.dumps(str(lost)) in _table(new)["ports"]  # a link gone: listed by its index
    antispoof.forget_dead()
    listed = _table(new)
    assert listed["ports"] == [json.dumps(keep)]
    assert listed["mac_ok"] == [json.dumps({"concat": [keep, "02:00:00:00:00:0a"]})]
    assert listed["ip_ok"] == [json.dumps({"concat": [keep, "10.231.99.10"]})]


def test_forget_takes_only_the_entries_of_its_index(tables, veths):
    new, _ = tables
    (_, ia), (b, ib) = veths(), veths()
    antispoof.allow(ia, "02:00:00:00:00:0a", "10.231.99.10")
    antispoof.allow(ib, "02:00:00:00:00:0b", "10.231.99.11")
    antispoof.forget(ia, "02:00:00:00:00:0a", "10.231.99.10")
    assert _table(new)["ports"] == [json.dumps(b)]
    assert _table(new)["mac_ok"] == [json.dumps({"concat": [b, "02:00:00:00:00:0b"]})]
