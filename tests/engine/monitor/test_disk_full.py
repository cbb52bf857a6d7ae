"""The log's disk full during a flood: a clear error, the container keeps running (it waits in write),
nothing is lost, and logging resumes when space returns."""

from __future__ import annotations

import json
import subprocess
import time

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
        monitor.start("full", bundle(["sh", "-c", script], overlay=False), log_path=str(log), log_max_size=0)
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
