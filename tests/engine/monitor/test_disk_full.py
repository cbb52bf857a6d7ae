"""The log's disk full during a flood: a clear error, the container keeps running (it waits in write for its
hold time, then its output is dropped and counted), and logging resumes when space returns, with a marker
line for what was dropped (workers/engine/monitor/logfull.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def _until(predicate, what: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("monitor", ["berth"], indirect=True)
def test_full_log_disk_holds_output_back_and_loses_nothing(monitor, bundle, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        filler = small / "filler"
        filler.write_bytes(b"\0" * 900 * 1024)
        script = ("i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; echo done; "
                  "while true; do usleep 20000; done")
        log = small / "c.log"
        monitor.start("full", bundle(["sh", "-c", script], overlay=False), log_path=str(log), log_max_size=0,
                      log_full_hold=3600)  # held, never dropped, however slow the machine
        st = _until(lambda: (s := monitor.client.status("full")).get("log_error") and s, "the log error reported")
        assert st["status"] == "running" and "No space left on device" in st["log_error"]
        filler.unlink()  # space returns

        def logged():  # whole lines: a write the disk cut short ends mid-line until it is finished
            return [json.loads(x)["log"] for x in log.read_text().split("\n")[:-1]]

        _until(lambda: logged()[-1:] == ["done\n"], "logging resumed to the end")
        assert logged() == [f"line-{i}\n" for i in range(5000)] + ["done\n"]
        assert monitor.client.status("full")["log_error"] is None
        monitor.runtime_call("kill", "full", "KILL")
        assert monitor.client.wait("full", timeout=30)["exit_code"] == 137
    finally:
        monitor.runtime_call("delete", "--force", "full", check=False)
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_a_flood_on_a_full_state_root_is_dropped_counted_and_marked_and_the_container_runs_on(
        bundle, tmp_path_factory):
    """The whole state root (monitor, runtime state, the log) on a small tmpfs, filled by a container writing as
    fast as it can with hold 0 (dropped at once, as Docker and conmon do, but counted): the container is neither
    killed nor held, the monitor lives, the file keeps whole JSON lines, and once space returns a marker says how
    many lines were dropped and logging goes on. Every line the container printed is on disk or in a marker."""
    from tests.engine.monitor.conftest import MonitorHarness, stop_pid

    small = tmp_path_factory.mktemp("df")  # short: the monitor's socket lives in it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    h = None
    try:
        h = MonitorHarness(small, "berth")
        h.client.ensure_running()
        pid = h.client.pid()
        (small / "filler").write_bytes(b"\0" * (1200 * 1024))
        script = ("i=0; while true; do echo line-$i; i=$((i+1)); case $i in *000) echo $i > /progress; "
                  "if [ -e /stop ]; then echo $i > /final; while [ ! -e /go ]; do usleep 20000; done; "
                  "echo resumed; exec sleep 3600; fi;; esac; done")
        h.start("quiet", bundle(["sleep", "3600"], overlay=False))  # to exit while the disk is full
        b = bundle(["sh", "-c", script], overlay=False)
        h.start("flood", b, log_max_size=0, log_full_hold=0)
        _until(lambda: "dropped" in (h.client.status("flood").get("log_error") or ""), "dropping", 120)
        progress = b.rootfs / "progress"
        seen = int(progress.read_text() or 0)
        _until(lambda: int(progress.read_text() or 0) >= seen + 5000, "the container running on meanwhile", 120)
        st = h.client.status("flood")
        assert st["status"] == "running" and st["log_dropped"] > 0 and "No space left" in st["log_error"], st
        assert h.client.pid() == pid and Path(f"/proc/{pid}").exists(), "the monitor lives"
        log = small / "containers" / "flood" / "logs" / "container.log"
        whole = log.read_text().split("\n")[:-1]  # the last piece may be a line the disk cut
        assert whole and all(json.loads(x)["log"].startswith("line-") for x in whole)
        # A container that exits now: its exit record cannot be written, the monitor knows it meanwhile.
        h.runtime_call("kill", "quiet", "KILL")
        assert h.client.wait("quiet", timeout=60)["exit_code"] == 137
        assert h.client.pid() == pid and not (small / "containers" / "quiet" / "exit.json").exists()

        (b.rootfs / "stop").touch()
        final = _until(lambda: (b.rootfs / "final").exists() and int((b.rootfs / "final").read_text() or 0),
                       "the flood to stop", 120)
        (small / "filler").unlink()  # space returns
        _until(lambda: h.client.status("flood")["log_error"] is None, "the log written again", 120)
        exit_file = small / "containers" / "quiet" / "exit.json"
        assert json.loads(_until(lambda: exit_file.exists() and exit_file.read_text(), "the exit record", 60)
                          )["exit_code"] == 137
        (b.rootfs / "go").touch()
        entries = _until(lambda: (e := [json.loads(x) for x in log.read_text().splitlines()])[-1]["log"]
                         == "resumed\n" and e, "logging resumed", 120)
        lines = [e["log"] for e in entries if e["log"].startswith("line-")]
        markers = [e["log"] for e in entries if e["log"].startswith("berth: ")]
        assert markers and all(e["stream"] == "stderr" for e in entries if e["log"].startswith("berth: "))
        dropped = sum(int(m.split()[1]) for m in markers)
        assert dropped == h.client.status("flood")["log_dropped"] > 0
        assert len(lines) + dropped == final, (len(lines), dropped, final)
        numbers = [int(x[5:]) for x in lines]
        assert numbers == sorted(numbers) and numbers[:100] == list(range(100)), "in order, the start kept"
        assert h.client.pid() == pid
        h.runtime_call("kill", "flood", "KILL")
        assert h.client.wait("flood", timeout=30)["exit_code"] == 137
    finally:
        if h is not None:
            for cid in ("flood", "quiet"):
                h.runtime_call("delete", "--force", cid, check=False)
            for p in (h.client.pid(), h.client.holder_pid()):
                stop_pid(p)
        subprocess.run(["umount", "-l", str(small)], check=False)
