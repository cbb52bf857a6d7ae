"""The per-host monitor, with real containers under runc and under Berth's runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from workers.engine.monitor import MonitorError
from workers.engine.monitor.jsonlog import PARTIAL_LIMIT
from workers.engine.monitor.layout import project_dir

REPO = project_dir()


def stop_pid(pid: int | None) -> None:
    """Stop a daemon by its PID: TERM, then KILL."""
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(300):
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.01)

pytestmark = pytest.mark.root


def test_logs_in_json_file_format_with_streams_told_apart(monitor, bundle):
    b = bundle(["sh", "-c", "echo to-out; echo to-err >&2; echo 'ünïcode \"q\"'; printf no-newline; exit 7"],
               overlay=False)
    monitor.start("logs", b)
    st = monitor.client.wait("logs", timeout=60)
    assert st["status"] == "exited" and st["exit_code"] == 7 and st["oom_killed"] is False
    entries = monitor.log_entries("logs")
    assert all(set(e) == {"log", "stream", "time"} for e in entries)
    assert all(e["time"].endswith("Z") and len(e["time"].split(".")[1]) == 10 for e in entries)  # 9 digits + Z
    out = [e["log"] for e in entries if e["stream"] == "stdout"]
    err = [e["log"] for e in entries if e["stream"] == "stderr"]
    assert out == ["to-out\n", 'ünïcode "q"\n', "no-newline"]
    assert err == ["to-err\n"]
    rec = monitor.exit_record("logs")
    assert rec["exit_code"] == 7 and rec["oom_killed"] is False and rec["finished_at"].endswith("Z")


@pytest.mark.parametrize("monitor", ["berth"], indirect=True)
def test_default_runtime_is_berths(monitor, bundle):
    b = bundle(["sh", "-c", "echo via-default"], overlay=False)
    monitor.ids.append("dflt")
    monitor.client.start_container("dflt", b.path)  # no runtime_cmd
    assert monitor.client.wait("dflt", timeout=60)["exit_code"] == 0
    assert (monitor.root / "runtime" / "dflt").is_dir()  # state of Berth's runtime under <root>/runtime
    assert [e["log"] for e in monitor.log_entries("dflt")] == ["via-default\n"]


def test_signal_death_records_128_plus_signal(monitor, bundle):
    b = bundle(["sh", "-c", "echo up; while true; do sleep 1; done"], overlay=False)
    st = monitor.start("sig", b)
    assert st["status"] == "running" and st["pid"] > 0
    assert monitor.client.status("sig")["status"] == "running"
    monitor.runtime_call("kill", "sig", "KILL")
    st = monitor.client.wait("sig", timeout=60)
    assert st["exit_code"] == 128 + signal.SIGKILL
    assert monitor.exit_record("sig")["exit_code"] == 137


def test_long_lines_are_split_into_16k_partials(monitor, bundle):
    b = bundle(["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo after"], overlay=False)
    monitor.start("long", b)
    monitor.client.wait("long", timeout=60)
    logs = [e["log"] for e in monitor.log_entries("long")]
    assert [len(x) for x in logs[:3]] == [PARTIAL_LIMIT, PARTIAL_LIMIT, 40000 - 2 * PARTIAL_LIMIT + 1]
    assert logs[2].endswith("\n") and "".join(logs[:3]) == "x" * 40000 + "\n" and logs[3] == "after\n"


def test_rotation_by_size(monitor, bundle):
    script = "i=0; while [ $i -lt 600 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done"
    b = bundle(["sh", "-c", script], overlay=False)
    monitor.start("rot", b, log_max_size=8000, log_max_files=3)
    monitor.client.wait("rot", timeout=60)
    logdir = monitor.root / "containers" / "rot" / "logs"
    names = sorted(p.name for p in logdir.iterdir())
    assert names == ["container.log", "container.log.1", "container.log.2"]
    for name in names:
        assert 0 < (logdir / name).stat().st_size <= 8000
    # The files are consecutive: .2 then .1 then the live file, ending with the last line.
    lines = []
    for name in ("container.log.2", "container.log.1", "container.log"):
        lines += [json.loads(x)["log"] for x in (logdir / name).read_text().splitlines()]
    numbers = [int(x.split("-")[1]) for x in lines]
    assert numbers == list(range(numbers[0], 600)) and numbers[0] > 0


def test_oom_kill_is_reported(monitor, bundle):
    b = bundle(["sh", "-c", "echo start; exec dd if=/dev/zero of=/dev/null bs=200M count=1"], overlay=False)
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(
        memory={"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}))
    monitor.start("oom", b)
    st = monitor.client.wait("oom", timeout=60)
    assert st["oom_killed"] is True and st["exit_code"] == 128 + signal.SIGKILL
    assert monitor.exit_record("oom")["oom_killed"] is True


def test_no_oom_without_pressure(monitor, bundle):
    b = bundle(["true"], overlay=False)
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(memory={"limit": 64 * 1024 * 1024}))
    monitor.start("nooom", b)
    st = monitor.client.wait("nooom", timeout=60)
    assert st["exit_code"] == 0 and st["oom_killed"] is False


STARTER = textwrap.dedent("""
    import sys, time
    from workers.engine.monitor import MonitorClient
    root, cid, bundle, *cmd = sys.argv[1:]
    c = MonitorClient(root)
    c.ensure_running()
    st = c.start_container(cid, bundle, runtime_cmd=cmd)
    print(st["status"], flush=True)
    time.sleep(3600)
""")


def test_monitor_survives_its_starter_killed_by_pid(tmp_path_factory, bundle, monitor):
    # A fresh state root: the monitor is started by the starter process, not by the fixture.
    root = tmp_path_factory.mktemp("starter")
    b = bundle(["sh", "-c", "trap 'echo bye; exit 5' TERM; echo up; while true; do sleep 0.1; done"],
               overlay=False)
    cmd = [c.replace(str(monitor.root), str(root)) for c in monitor.runtime_cmd]
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(root), "orphan", str(b.path), *cmd],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    from workers.engine.monitor import MonitorClient

    client = MonitorClient(root)
    try:
        assert starter.stdout.readline().strip() == "running"
        mon_pid = client.pid()
        assert mon_pid and mon_pid != starter.pid
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait()
        assert client.status("orphan")["status"] == "running"
        # Detached: its own session, not a child of the dead starter.
        assert os.getsid(mon_pid) != os.getsid(0)
        ppid = int(open(f"/proc/{mon_pid}/stat").read().rsplit(")", 1)[1].split()[1])
        assert ppid != starter.pid
        subprocess.run([*cmd, "kill", "orphan", "TERM"], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        st = client.wait("orphan", timeout=60)
        assert st["exit_code"] == 5
        assert json.loads((root / "containers" / "orphan" / "exit.json").read_text())["exit_code"] == 5
        logs = [json.loads(x)["log"] for x in (root / "containers/orphan/logs/container.log").read_text().splitlines()]
        assert logs == ["up\n", "bye\n"]
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        subprocess.run([*cmd, "delete", "--force", "orphan"], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        stop_pid(client.pid())
        stop_pid(client.holder_pid())


def test_fifty_lines_per_second_stream_live_to_attach(monitor, bundle):
    script = "i=0; while [ $i -lt 150 ]; do echo tick-$i; i=$((i+1)); usleep 20000; done; exit 3"
    b = bundle(["sh", "-c", script], overlay=False)
    monitor.start("tick", b)
    seen, final = [], None
    for msg in monitor.client.attach("tick"):
        if "exit" in msg:
            final = msg["exit"]
            break
        assert msg["stream"] == "stdout"
        seen.append(msg["data"])
    assert final is not None and final["exit_code"] == 3
    expected = [f"tick-{i}\n" for i in range(150)]
    assert seen and seen == expected[len(expected) - len(seen):]  # a live suffix, in order, nothing lost
    assert [e["log"] for e in monitor.log_entries("tick")] == expected


@pytest.mark.parametrize("monitor", ["runc"], indirect=True)  # the sink does not depend on the runtime
def test_redis_stream_sink(monitor, bundle, redis_server, monkeypatch, tmp_path_factory):
    import redis

    from workers.engine.monitor import MonitorClient

    root = tmp_path_factory.mktemp("redis")
    monkeypatch.setenv("BERTH_LOG_REDIS_URL", redis_server.url)
    client = MonitorClient(root)
    client.ensure_running()
    cmd = [monitor.runtime_cmd[0], "--root", str(root / "runc")]
    try:
        b = bundle(["sh", "-c", "echo one; echo two >&2; echo three"], overlay=False)
        client.start_container("rds", b.path, runtime_cmd=cmd)
        assert client.wait("rds", timeout=60)["exit_code"] == 0
        client.ping()  # one more loop turn: the batch is flushed at the end of each
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        entries = [fields for _, fields in r.xrange("berth:logs:rds")]
        assert sorted((e["stream"], e["log"]) for e in entries) == [
            ("stderr", "two\n"), ("stdout", "one\n"), ("stdout", "three\n")]
        assert all(e["time"].endswith("Z") for e in entries)
        r.delete("berth:logs:rds")
    finally:
        subprocess.run([*cmd, "delete", "--force", "rds"], capture_output=True)
        stop_pid(client.pid())
        stop_pid(client.holder_pid())


def test_tty_container_logs_through_console_socket(monitor, bundle):
    b = bundle(["sh", "-c", "tty; echo from-tty"], overlay=False)
    b.edit(lambda c: c["process"].update(terminal=True))
    monitor.start("tty", b, tty=True)
    st = monitor.client.wait("tty", timeout=60)
    assert st["exit_code"] == 0
    logs = [e["log"] for e in monitor.log_entries("tty")]
    assert logs[0].startswith("/dev/pts/") and logs[1] == "from-tty\r\n"


def test_terminal_resize_and_input_reach_the_program(monitor, bundle):
    # the program waits for a line, so the resize is in place before `stty size` runs
    b = bundle(["sh", "-c", "read a; stty size; read b; echo got=$a/$b"], overlay=False)
    b.edit(lambda c: c["process"].update(terminal=True))
    monitor.start("term", b, tty=True)
    monitor.client.resize("term", rows=33, cols=77)
    assert monitor.client.input("term", "first\n") == len("first\n")
    assert monitor.client.input("term", "second\n") == len("second\n")
    st = monitor.client.wait("term", timeout=60)
    assert st["exit_code"] == 0
    logs = [e["log"] for e in monitor.log_entries("term")]
    assert "33 77\r\n" in logs and "got=first/second\r\n" in logs


def test_input_and_resize_need_a_terminal(monitor, bundle):
    monitor.start("plain", bundle(["sleep", "1000"], overlay=False))
    with pytest.raises(MonitorError, match="no terminal"):
        monitor.client.input("plain", "x\n")
    with pytest.raises(MonitorError, match="no terminal"):
        monitor.client.resize("plain", rows=10, cols=10)
    monitor.runtime_call("kill", "plain", "KILL")
    assert monitor.client.wait("plain", timeout=60)["exit_code"] == 137


def test_create_failure_is_reported_and_leaves_no_record(monitor, bundle):
    b = bundle(["/no/such/program"], overlay=False)
    (b.path / "config.json").write_text("{not json")
    with pytest.raises(MonitorError, match="create failed"):
        monitor.start("bad", b)
    with pytest.raises(MonitorError, match="no such container"):
        monitor.client.status("bad")
    assert monitor.client.list() == []


def test_restart_rebuilds_from_disk_and_records_the_real_exits(monitor, bundle):
    loop = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    monitor.start("stays", bundle(loop, overlay=False))
    monitor.start("dies", bundle(loop, overlay=False))
    old_pid = monitor.client.pid()
    os.kill(old_pid, signal.SIGKILL)  # a crash: no chance to clean up
    for _ in range(500):
        if not os.path.exists(f"/proc/{old_pid}"):
            break
        time.sleep(0.01)
    monitor.runtime_call("kill", "dies", "KILL")
    monitor.client.ensure_running()
    assert monitor.client.pid() != old_pid
    # the holder reaped it while no monitor ran: its real status, not "unknown"
    dead = monitor.client.status("dies")
    assert dead["status"] == "exited" and dead["exit_code"] == 137 and not dead["reason"]
    assert monitor.exit_record("dies")["exit_code"] == 137
    assert monitor.client.status("stays")["status"] == "running"
    monitor.runtime_call("kill", "stays", "TERM")
    st = monitor.client.wait("stays", timeout=60)
    assert st["exit_code"] == 0 and not st["reason"]
