"""Create-argument checks and Docker's merge rules, without running anything."""

from __future__ import annotations

import pytest

from workers.engine.containers import restart
from workers.engine.containers.bundle import process_args
from workers.engine.containers.config import merge_env, parse_mount, parse_size
from workers.engine.containers.errors import InvalidConfig
from workers.engine.containers.host_checks import check_on_host
from workers.engine.containers.spec import ContainerSpec


def normalize(**values):
    spec = ContainerSpec.from_json(values)
    check_on_host(spec)
    return spec.to_json()


BASE: dict = {}


@pytest.mark.parametrize("field,value,message", [
    ("memory", 1, "memory limit 1 B is below the minimum of 6 MiB"),
    ("memory", 5 * 1024 * 1024, "memory limit 5 MiB is below the minimum of 6 MiB"),
    ("memory", "64x", "invalid size '64x': use a number with an optional unit b, k, m or g"),
    ("memory", True, "memory limit must be a number, not True"),
    ("cpus", "abc", "cpus must be a number, not 'abc'"),
    ("pids_limit", 0, "pids limit 0 is below the minimum of 1"),
    ("cpus", 4097, "cpus must be more than 0 (at least 0.01) and at most the host's CPUs, not 4097"),
    ("restart_policy", "on-failure:x", "invalid restart policy 'on-failure:x': use no, always, unless-stopped "
                                       "or on-failure[:N]"),
    ("mounts", ["a:b:c:d"], "invalid mount 'a:b:c:d': expected 'source:/destination[:ro]'"),
    ("mounts", ["vol:/x/../etc"], "mount destination '/x/../etc' must not contain '..'"),
    ("mounts", ["/no/such/dir/here:/x"], "bind mount source /no/such/dir/here does not exist on this host"),
    ("mounts", ["v:/a", "w:/a"], "duplicate mount destination /a"),
    ("hostname", "-bad", "invalid hostname '-bad'"),
    ("command", [1], "command must be a list of strings"),
    ("env", {"A B": "1"}, "invalid environment variable name 'A B'"),
])
def test_refusals_name_the_field(field, value, message):
    with pytest.raises(InvalidConfig) as e:
        normalize(**{**BASE, field: value})
    assert (e.value.field, str(e.value)) == (field, message)


def test_sizes_and_mounts():
    assert parse_size("64m") == 64 * 1024**2 and parse_size("1g") == 1024**3 and parse_size("512") == 512
    assert normalize(**{**BASE, "memory": "64m"})["memory"] == 64 * 1024**2
    assert parse_mount("data:/v:ro") == {"type": "volume", "name": "data", "destination": "/v", "read_only": True}
    assert parse_mount("/tmp:/h")["type"] == "bind"


def test_docker_merge_rules():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    cfg = {"entrypoint": None, "command": None}
    assert process_args(cfg, image) == ["/entry", "default"]
    assert process_args({**cfg, "command": ["x"]}, image) == ["/entry", "x"]
    assert process_args({**cfg, "entrypoint": ["/other"]}, image) == ["/other"]
    assert process_args({"entrypoint": ["/other"], "command": ["y"]}, image) == ["/other", "y"]
    with pytest.raises(InvalidConfig) as e:
        process_args(cfg, {})
    assert e.value.field == "command"
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3"]) == ["PATH=/bin", "A=2", "B=3"]


def test_restart_policy_rules():
    assert restart.should_restart("always", 0, 50, False)
    assert not restart.should_restart("always", 1, 0, True)  # stopped by the user
    assert restart.should_restart("on-failure:2", 1, 1, False)
    assert not restart.should_restart("on-failure:2", 1, 2, False)
    assert not restart.should_restart("on-failure", 0, 0, False)
    assert not restart.should_restart("no", 1, 0, False)
    assert restart.backoff(0) < restart.backoff(1) < restart.backoff(2) and restart.backoff(50) == restart.BACKOFF_MAX
