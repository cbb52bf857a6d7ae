"""`python -m workers.engine` network verbs and run's network flags, end to end on a real host."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.engine.containers.test_containers_cli import berth
from tests.engine.net.conftest import bridges, run_out

pytestmark = pytest.mark.root


def ok(root, *args):
    r = berth(root, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_network_verbs_and_run_flags(mgr):
    root = mgr.root
    nid = ok(root, "network", "create", "--subnet", "10.231.20.0/24", "-l", "env=test", "front").strip()
    assert len(nid) == 64
    ok(root, "network", "create", "--subnet", "10.231.21.0/24", "back")
    assert "front" in ok(root, "network", "ls") and "10.231.21.0/24" in ok(root, "network", "ls")
    ok(root, "run", "-d", "--name", "web", "--network", "front", "--network-alias", "site", "-p", "80",
       "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
    ok(root, "run", "-d", "--name", "cli", "--network", "front", "--add-host", "db.local:10.1.2.3",
       "--dns", "10.231.20.53", "busybox", "sleep", "300")
    line = ok(root, "port", "web").strip()
    assert line.startswith("80/tcp -> 127.0.0.1:")
    body = urllib.request.urlopen(f"http://{line.split(' -> ')[1]}/hostname", timeout=10).read().decode()
    assert body.strip() == ok(root, "inspect", "web").split('"id": "')[1][:12]
    hosts = run_out(mgr, "cli", ["cat", "/etc/hosts", "/etc/resolv.conf"])[1]
    assert "10.1.2.3\tdb.local" in hosts and "nameserver 10.231.20.53" in hosts
    info = json.loads(ok(root, "network", "inspect", "front"))[0]
    assert info["labels"] == {"env": "test"} and len(info["containers"]) == 2
    ok(root, "network", "connect", "back", "cli")
    assert set(mgr.inspect("cli")["network"]["networks"]) == {"front", "back"}
    ok(root, "network", "disconnect", "back", "cli")
    assert set(mgr.inspect("cli")["network"]["networks"]) == {"front"}
    r = berth(root, "network", "rm", "front")
    assert r.returncode == 125 and "in use" in r.stderr
    assert ok(root, "network", "prune").split() == ["back"]
    bridge = info["bridge"]
    assert bridge in bridges()
    ok(root, "network", "rm", "-f", "front")
    assert bridge not in bridges()
    r = berth(root, "run", "-d", "--network", "nowhere", "busybox", "true")
    assert r.returncode == 125 and "no such network 'nowhere'" in r.stderr
