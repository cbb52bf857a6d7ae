"""Stop/kill/pause, restart policies, OOM, reconcile with a new manager, following logs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.engine.containers.helpers import output, run, supervise_passes, supervise_until, wait_for_line
from workers.engine.containers import ContainerManager, InvalidState

pytestmark = pytest.mark.root


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_stop_sigkills_a_container_that_ignores_sigterm(manager: ContainerManager):
    manager.create("busybox", name="stubborn", command=["sh", "-c", "trap '' TERM; echo ready; "
                                                        "while :; do sleep 1; done"])
    manager.start("stubborn")
    wait_for_line(manager, "stubborn", "ready")
    c = manager.stop("stubborn", timeout=1)
    assert c["state"] == "exited" and c["exit_code"] == 137 and not c["oom_killed"]


def test_stop_of_a_sigterm_honouring_container_exits_143(manager: ContainerManager):
    manager.create("busybox", name="polite", command=["sh", "-c", "trap 'exit 143' TERM; echo ready; "
                                                      "while :; do sleep 0.1; done"])
    manager.start("polite")
    wait_for_line(manager, "polite", "ready")
    c = manager.stop("polite", timeout=60)
    assert c["state"] == "exited" and c["exit_code"] == 143
    assert manager.stop("polite")["exit_code"] == 143  # stopping a stopped container changes nothing
    with pytest.raises(InvalidState):
        manager.kill("polite")


def test_kill_pause_unpause_restart(manager: ContainerManager):
    manager.create("busybox", name="k", command=["sh", "-c", "echo ready; while :; do sleep 0.1; done"])
    started = manager.start("k")
    assert started["state"] == "running"
    with pytest.raises(InvalidState, match="already running"):
        manager.start("k")
    assert manager.pause("k")["state"] == "paused"
    assert manager.inspect("k")["state"] == "paused"
    assert manager.unpause("k")["state"] == "running"
    again = manager.restart("k", timeout=1)
    assert again["state"] == "running" and again["pid"] != started["pid"]
    assert manager.kill("k", "SIGKILL")["exit_code"] == 137
    manager.start("k")
    manager.pause("k")
    assert manager.stop("k", timeout=1)["state"] == "exited"  # a paused container can be stopped


def test_on_failure_2_restarts_exactly_twice(manager: ContainerManager, instant_restarts):
    c = manager.create("busybox", command=["sh", "-c", "echo run; exit 3"], restart_policy="on-failure:2")
    manager.start(c["id"])
    changes = supervise_until(manager, lambda: manager.inspect(c["id"])["restart_count"] == 2
                              and manager.inspect(c["id"])["state"] == "exited", "two restarts")
    assert any(ch["restart_count"] == 1 for ch in changes)
    supervise_passes(manager)  # a third restart would have happened by now (no backoff): none does
    info = manager.inspect(c["id"])
    assert info["restart_count"] == 2 and info["state"] == "exited" and info["exit_code"] == 3
    assert output(manager, c["id"]).split() == ["run", "run", "run"]
    assert "on-failure" in info["status_message"] or "exited" in info["status_message"]


def test_on_failure_does_not_restart_a_clean_exit(manager: ContainerManager, instant_restarts):
    c = run(manager, "exit 0", restart_policy="on-failure")
    supervise_passes(manager)
    info = manager.inspect(c["id"])
    assert info["restart_count"] == 0 and info["state"] == "exited" and info["exit_code"] == 0


def test_on_failure_restarts_a_failed_exit_within_the_same_passes(manager: ContainerManager, instant_restarts):
    # the control for the test above: the same passes do restart a failed exit
    c = run(manager, "exit 1", restart_policy="on-failure:1")
    supervise_passes(manager)
    assert manager.inspect(c["id"])["restart_count"] == 1


def test_always_restarts_until_stopped_by_the_user(manager: ContainerManager, instant_restarts):
    c = manager.create("busybox", command=["sh", "-c", "echo up"], restart_policy="always")
    manager.start(c["id"])
    supervise_until(manager, lambda: manager.inspect(c["id"])["restart_count"] >= 2, "two restarts")
    count = manager.stop(c["id"], timeout=1)["restart_count"]
    supervise_passes(manager)
    info = manager.inspect(c["id"])
    assert info["restart_count"] == count and info["state"] == "exited"


def test_memory_limit_bites_and_oom_kill_is_reported(manager: ContainerManager):
    c = manager.create("busybox", command=["sh", "-c", "exec tail /dev/zero"], memory=16 * 1024 * 1024)
    manager.start(c["id"])
    changes = supervise_until(manager, lambda: manager.inspect(c["id"])["state"] == "exited", "the OOM kill")
    last = [ch for ch in changes if ch["id"] == c["id"]][-1]
    assert last["oom_killed"] is True and last["exit_code"] == 137
    assert last["status_message"] == "OOM killed"
    assert manager.inspect(c["id"])["oom_killed"] is True


def test_reconcile_with_a_new_manager(state_root: Path, tmp_path: Path):
    first = ContainerManager(state_root)
    signal_dir = tmp_path / "sig"
    signal_dir.mkdir()
    long = first.create("busybox", name="long", command=["sleep", "1000"])
    short = first.create("busybox", name="short", mounts=[f"{signal_dir}:/sig"],
                         command=["sh", "-c", "until [ -e /sig/go ]; do sleep 0.05; done; exit 7"])
    first.start("long")
    first.start("short")
    pid = first.inspect("long")["pid"]
    seen = {c["name"]: c["state"] for c in first.supervise()}
    assert seen == {"long": "running", "short": "running"}
    # "short" ends while no manager looks
    (signal_dir / "go").touch()
    exit_file = state_root / "containers" / short["id"] / "exit.json"
    deadline = time.monotonic() + 30
    while not exit_file.exists():
        assert time.monotonic() < deadline, "short container never exited"
        time.sleep(0.02)
    del first
    second = ContainerManager(state_root)
    found = {c["name"]: c for c in second.reconcile()}
    assert set(found) == {"long", "short"}
    assert found["long"]["state"] == "running" and found["long"]["pid"] == pid and _alive(pid)
    assert found["long"]["id"] == long["id"]
    assert found["short"]["state"] == "exited" and found["short"]["exit_code"] == 7
    assert second.supervise() == []  # reported once
    assert _alive(pid)


def test_logs_follow_and_rotated_files(state_root: Path):
    m = ContainerManager(state_root, log_max_size=4096, log_max_files=3)
    c = m.create("busybox", command=["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"])
    m.start(c["id"])
    followed = [r["log"] for r in m.logs(c["id"], follow=True)]
    assert m.wait(c["id"], timeout=30)["exit_code"] == 0
    files = m.log_files(c["id"])
    assert len(files) == 3 and files[-1].name == "container.log" and files[0].name == "container.log.2"
    kept = [r["log"] for r in m.logs(c["id"])]
    assert kept[-1] == "line-399\n"
    first = int(kept[0].strip().split("-")[1])
    assert kept == [f"line-{i}\n" for i in range(first, 400)]  # oldest file first, in order, no gaps
    assert followed[-len(kept):] == kept and len(followed) >= len(kept)
    assert [r["log"] for r in m.logs(c["id"], tail=2)] == ["line-398\n", "line-399\n"]


def test_logs_reach_redis_when_given_a_url(state_root: Path, redis_url: str):
    import redis

    # the monitor is started first by a manager without a URL (as the host CLI would): the URL must reach
    # it with each container, not through its environment
    first = ContainerManager(state_root)
    run(first, "true")
    monitor_pid = first.monitor.ping()["pid"]
    assert "BERTH_LOG_REDIS_URL" not in _environ(monitor_pid)
    m = ContainerManager(state_root, log_redis_url=redis_url)
    c = run(m, "echo to-redis")
    r = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while not r.xlen(f"berth:logs:{c['id']}"):
        assert time.monotonic() < deadline, "no log entry reached redis"
        time.sleep(0.05)
    (_, fields), = r.xrange(f"berth:logs:{c['id']}")
    assert fields[b"log"] == b"to-redis\n" and fields[b"stream"] == b"stdout"
    r.delete(f"berth:logs:{c['id']}")
    # the same monitor fed Redis, still without the URL in its environment
    assert m.monitor.ping()["pid"] == monitor_pid and "BERTH_LOG_REDIS_URL" not in _environ(monitor_pid)


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.decode().partition("=")[::2] for item in f.read().split(b"\0") if item)
