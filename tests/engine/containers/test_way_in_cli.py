"""`berth exec/top/stats/cp` from the host's command line, with a real pty for `exec -it`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.containers.test_containers_cli import REPO, berth
from workers.engine.containers import ContainerManager

pytestmark = pytest.mark.root


def _sleeper(root: Path) -> str:
    r = berth(root, "run", "-d", "--name", "box", "-h", "clihost", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _read_until(fd: int, needle: bytes, buf: bytearray) -> None:
    while needle not in buf:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"{needle!r} never came: {bytes(buf)!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        assert chunk, f"ended before {needle!r}: {bytes(buf)!r}"
        buf += chunk


def test_exec_runs_in_the_container_with_its_exit_code(state_root: Path):
    _sleeper(state_root)
    r = berth(state_root, "exec", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "box",
              "sh", "-c", 'echo "$(hostname) $(id -u) $(pwd) $A"; echo err >&2; exit 4')
    assert r.returncode == 4 and r.stdout == "clihost 65534 /tmp b\n" and r.stderr == "err\n"
    r = subprocess.run([sys.executable, "-m", "workers.engine", "--root", str(state_root), "exec", "-i", "box",
                        "sh", "-c", "tr a-z A-Z"], input="piped in\n", capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stdout == "PIPED IN\n", r.stderr
    bad = berth(state_root, "exec", "box", "/no/such")
    assert bad.returncode == 125 and "no such file" in bad.stderr


def test_exec_it_in_a_pty_answers_tty_and_exits(state_root: Path):
    _sleeper(state_root)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["PYTHONPATH"] = str(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "workers.engine", "--root", str(state_root), "exec", "-it",
                                  "box", "sh"])
    try:
        buf = bytearray()
        os.write(fd, b"tty; echo $((6*7))x\n")
        _read_until(fd, b"42x", buf)
        assert b"/dev/pts/" in buf
        os.write(fd, b"exit 9\n")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 9
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_top_stats_cp(state_root: Path, tmp_path: Path):
    _sleeper(state_root)
    top = berth(state_root, "top", "box")
    assert top.returncode == 0 and "sleep 1000" in top.stdout and top.stdout.startswith("    PID")
    stats = berth(state_root, "--json", "stats", "--no-stream", "box")
    assert stats.returncode == 0, stats.stderr
    (s,) = json.loads(stats.stdout)
    assert s["name"] == "box" and s["pids"] >= 1 and s["memory"] > 0 and s["cpu_percent"] is not None
    assert "MEM USAGE / LIMIT" in berth(state_root, "stats", "--no-stream").stdout
    local = tmp_path / "hello.txt"
    local.write_text("from the host\n")
    assert berth(state_root, "cp", str(local), "box:/tmp/").returncode == 0
    assert berth(state_root, "cp", str(local), "box:/etc/renamed.txt").returncode == 0
    m = ContainerManager(state_root)
    assert m.stat_path("box", "/tmp/hello.txt")["size"] == 14 and m.stat_path("box", "/etc/renamed.txt")["size"] == 14
    out = tmp_path / "back.txt"
    r = berth(state_root, "cp", "box:/etc/renamed.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "from the host\n"
    r = berth(state_root, "cp", "box:/nope", str(out))
    assert r.returncode == 125 and "no such file" in r.stderr
