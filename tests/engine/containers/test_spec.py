"""The container spec: JSON round trip, every field's refusal names the field, fields the engine does not
apply yet are refused as "not supported yet" (never silently ignored), and nothing here looks at a host."""

from __future__ import annotations

import json

import pytest

from workers.engine.containers.errors import InvalidConfig
from workers.engine.containers.host_checks import check_on_host
from workers.engine.containers.spec import ContainerSpec

FULL = {
    "image": "busybox:1", "command": ["sh", "-c", "echo hi"], "entrypoint": ["/bin/env"],
    "env": {"A": "1", "EMPTY": ""}, "workdir": "/srv/app", "user": "1000:1000", "hostname": "web.local",
    "memory": 64 << 20, "memory_swap": -1, "cpus": 0.5, "cpu_shares": 512, "pids_limit": 100, "disk": 1 << 30,
    "restart_policy": "on-failure:3", "labels": {"tier": "web"}, "mounts": ["data:/data:ro", "/srv:/host-srv"],
    "auto_remove": False, "read_only": True, "tty": True, "networks": ["backend"], "network_aliases": ["db"], "ports": ["8080:80/tcp"],
    "dns": ["192.0.2.53"], "dns_search": ["example.org"], "extra_hosts": ["db:192.0.2.10"],
}

# One bad value per field, with the words its message must have: the field is named every time.
BAD = [
    ("image", 5, "must be a string"), ("command", [1], "list of strings"), ("entrypoint", "'", "invalid entrypoint"),
    ("env", {"A B": "1"}, "invalid environment variable name"), ("workdir", "rel", "must be an absolute path"),
    ("user", "a b", "invalid user"), ("hostname", "-x", "invalid hostname"), ("memory", "64x", "invalid size"),
    ("memory_swap", "1g", "needs a memory limit"), ("cpus", "many", "must be a number"),
    ("cpu_shares", 1, "out of range"), ("pids_limit", 0, "below the minimum"), ("disk", "1m", "below the minimum"),
    ("restart_policy", "sometimes", "invalid restart policy"), ("auto_remove", "maybe", "true or false"),
    ("labels", {"": "x"}, "non-empty"),
    ("mounts", ["v:/a", "w:/a"], "duplicate mount destination"), ("read_only", "maybe", "true or false"),
    ("tty", 2, "true or false"), ("ports", ["99999"], "ports are 1..65535"), ("networks", ["a b"], "invalid network"),
    ("dns", ["not-an-ip"], "not an IP address"), ("dns_search", ["-bad-"], "invalid search domain"),
    ("extra_hosts", ["db"], "use name:ip"), ("network_aliases", ["a b"], "invalid network alias"), ("cap_add", ["FLY"], "unknown capability"),
    ("cap_drop", [1], "capability names"), ("devices", ["dev/null"], "absolute path"),
    ("sysctls", {"Bad Name": "1"}, "invalid sysctl"), ("ulimits", {"nofile": "2:1"}, "above the hard limit"),
    ("init", "perhaps", "true or false"), ("stop_signal", "SIGNOPE", "unknown signal"),
    ("stop_timeout", -1, "below the minimum"), ("healthcheck", {"test": ["RUN"]}, "test must be"),
]

# A valid, non-default value for each field the engine does not apply yet.
NOT_YET = {
    "cap_add": ["NET_ADMIN"], "cap_drop": ["cap_chown"],
    "devices": ["/dev/fuse:/dev/fuse:rwm"], "sysctls": {"net.ipv4.ip_forward": "1"}, "ulimits": {"nofile": "1024:2048"},
    "init": True, "stop_signal": "SIGINT", "stop_timeout": 5,
    "healthcheck": {"test": ["CMD", "true"], "interval": 30, "retries": 3},
}


def test_json_round_trip_keeps_every_field():
    spec = ContainerSpec.from_json(FULL)
    data = spec.to_json()
    assert set(data) == set(ContainerSpec.field_names())
    assert {k: data[k] for k in FULL} == FULL
    again = ContainerSpec.from_json(json.loads(json.dumps(data)))
    assert again == spec and again.to_json() == data


def test_values_are_normalised():
    spec = ContainerSpec.from_json({"command": "sh -c 'echo hi'", "env": ["A=1", "B", "A=2"], "memory": "64m",
                                    "disk": "1g", "restart_policy": " always ", "workdir": "/a/./b/",
                                    "stop_timeout": None, "read_only": "on", "cpus": "1.5"})
    assert spec.command == ["sh", "-c", "echo hi"] and spec.env == {"A": "2", "B": ""}
    assert (spec.memory, spec.disk, spec.cpus) == (64 << 20, 1 << 30, 1.5)
    assert (spec.restart_policy, spec.workdir, spec.read_only) == ("always", "/a/b", True)
    assert ContainerSpec.from_json({}) == ContainerSpec()


def test_every_field_has_a_refusal_case():
    assert {f for f, _, _ in BAD} == set(ContainerSpec.field_names())
    assert set(NOT_YET) == set(ContainerSpec.field_names()) - set(ContainerSpec.supported_fields())


@pytest.mark.parametrize("field,value,words", BAD, ids=[f for f, _, _ in BAD])
def test_each_refusal_names_its_field(field, value, words):
    with pytest.raises(InvalidConfig) as e:
        ContainerSpec.from_json({field: value})
    assert e.value.field == field and e.value.code == "invalid" and words in str(e.value), str(e.value)


@pytest.mark.parametrize("field", sorted(NOT_YET))
def test_fields_not_applied_yet_are_refused_not_ignored(field):
    with pytest.raises(InvalidConfig) as e:
        ContainerSpec.from_json({field: NOT_YET[field]})
    assert (e.value.field, e.value.code) == (field, "not_supported")
    assert str(e.value) == f"{field} is not supported yet: leave it out"


def test_unknown_settings_are_refused_unless_the_caller_carries_more():
    with pytest.raises(InvalidConfig) as e:
        ContainerSpec.from_json({"memroy": "64m"})
    assert e.value.field == "memroy" and "unknown container setting" in str(e.value)
    assert ContainerSpec.from_json({"memory": "64m", "start": True}, strict=False).memory == 64 << 20


def test_the_spec_does_not_look_at_a_host_but_the_host_check_does():
    spec = ContainerSpec.from_json({"mounts": ["/no/such/dir/here:/x"], "cpus": 64})  # fine anywhere
    with pytest.raises(InvalidConfig) as e:
        check_on_host(spec, cpu_count=128)
    assert e.value.field == "mounts" and "does not exist on this host" in str(e.value)
    with pytest.raises(InvalidConfig) as e:
        check_on_host(ContainerSpec.from_json({"cpus": 64}), cpu_count=2)
    assert e.value.field == "cpus" and "the CPUs of this host" in str(e.value)


def test_auto_remove_refuses_a_restart_policy():
    # Docker's "Conflicting options: --restart and --rm": removed at its exit, it could never be restarted
    assert ContainerSpec.from_json({"auto_remove": True}).auto_remove is True
    for policy in ("always", "unless-stopped", "on-failure:2"):
        with pytest.raises(InvalidConfig) as e:
            ContainerSpec.from_json({"auto_remove": True, "restart_policy": policy})
        assert e.value.field == "auto_remove" and "cannot be combined with restart policy" in str(e.value)
