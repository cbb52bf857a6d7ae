"""`python -m workers.engine` container verbs: run/ps/logs/rm round trip, errors exit 125, `run --rm -d`
removed by the engine at the exit, and a foreground run's signal proxy (--sig-proxy)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.conftest import cgroup_dirs, host_mounts_under

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BERTH_LOG_REDIS_URL", None)
    return env


def berth(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.engine", "--root", str(root), *args], capture_output=True,
                          text=True, env=_env(), timeout=120, stdin=subprocess.DEVNULL)


class Foreground:
    """A `berth` command in the foreground as a child we signal by its PID, and its stdout read as it comes."""

    def __init__(self, root: Path, *args: str):
        self.root = root
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.engine", "--root", str(root), *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_env(), bufsize=0)
        self.out = b""

    def until(self, text: str, limit: float = 120) -> None:
        """Read stdout until `text` shows (the container got that far); a bounded wait, not a timing."""
        deadline = time.monotonic() + limit
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on stdout: {self.out!r}"
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"stdout ended before {text!r}: {self.out!r} {self.proc.stderr.read()!r}"
                self.out += chunk

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)  # by the PID of our own child

    def finish(self) -> tuple[int, str, str]:
        """Its exit code, all its stdout and its stderr."""
        rest, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, (self.out + rest).decode(), err.decode()

    def close(self) -> None:
        """Whatever happened: the command killed by its PID if it still runs, then every container and the
        monitor of the state root gone."""
        from tests.support import clean_state_root

        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=120)
        clean_state_root(self.root)


def test_run_ps_logs_rm_round_trip(state_root: Path):
    fg = berth(state_root, "run", "--name", "fg", "-e", "WHO=cli", "-h", "clihost", "busybox",
               "sh", "-c", 'echo "hello $WHO from $(hostname)"; echo oops >&2; exit 5')
    assert fg.returncode == 5, fg.stderr
    assert fg.stdout == "hello cli from clihost\n" and fg.stderr == "oops\n"

    bg = berth(state_root, "run", "-d", "--name", "bg", "-m", "64m", "--restart", "on-failure:1", "busybox",
               "sleep", "1000")
    assert bg.returncode == 0, bg.stderr
    cid = bg.stdout.strip()
    assert len(cid) == 64

    ps = berth(state_root, "ps")
    assert "bg" in ps.stdout and "fg" not in ps.stdout and cid[:12] in ps.stdout
    listed = {c["name"]: c for c in json.loads(berth(state_root, "ps", "-a", "--json").stdout)}
    assert listed["fg"]["state"] == "exited" and listed["fg"]["exit_code"] == 5
    assert listed["bg"]["state"] == "running" and listed["bg"]["config"]["memory"] == 64 * 1024 * 1024

    logs = berth(state_root, "logs", "-t", "fg")
    assert logs.stdout.endswith(" hello cli from clihost\n") and logs.stdout[:4].isdigit()
    assert logs.stderr.endswith(" oops\n")
    assert berth(state_root, "logs", "--tail", "0", "fg").stdout == ""
    assert berth(state_root, "logs", "--since", "2100-01-01T00:00:00Z", "fg").stdout == ""
    assert berth(state_root, "logs", "--since", "1h", "fg").stdout == "hello cli from clihost\n"
    bad = berth(state_root, "logs", "--since", "yesterday", "fg")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: invalid --since 'yesterday'")

    refused = berth(state_root, "rm", "bg")
    assert refused.returncode == 125 and refused.stderr.startswith("Error: container bg is running")
    assert berth(state_root, "rm", "-f", "bg", "fg").returncode == 0
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
    assert list((state_root / "containers").iterdir()) == []


def test_errors_exit_125_with_one_line(state_root: Path):
    for args, message in [
        (("run", "-m", "1", "busybox", "true"), "Error: memory limit 1 B is below the minimum of 6 MiB\n"),
        (("run", "nosuch:latest"), "Error: no such image 'nosuch:latest' on this host\n"),
        (("stop", "ghost"), "Error: no such container 'ghost'\n"),
    ]:
        r = berth(state_root, *args)
        assert (r.returncode, r.stderr) == (125, message)
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []


def test_run_rm_removes_the_container(state_root: Path):
    r = berth(state_root, "run", "--rm", "busybox", "echo", "bye")
    assert (r.returncode, r.stdout) == (0, "bye\n")
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []


# A busybox sh as the container's init: it reports the signals it traps; `wait` returns at once on one.
TRAPS = ('for s in INT HUP QUIT USR1 USR2; do trap "echo got $s" $s; done; trap "echo got TERM; exit 7" TERM; '
         'trap "echo got INT; exit 3" INT; echo ready; while :; do sleep 1000 & wait $!; done')


@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
def test_ctrl_c_reaches_the_container_and_its_code_is_the_cli_code(state_root: Path, tty: bool):
    # mutant caught: no signal.signal(...) in sigproxy.forwarding (Ctrl-C stops the CLI, never reaches it)
    fg = Foreground(state_root, "run", "--rm", *(["-t"] if tty else []), "busybox", "sh", "-c", TRAPS)
    try:
        fg.until("ready")
        fg.signal(signal.SIGINT)
        code, out, err = fg.finish()
        assert code == 3, (out, err)
        assert "got INT" in out
        # --rm in the foreground still removes it (after the CLI has read its exit code)
        assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
    finally:
        fg.close()


def test_start_attach_forwards_each_proxied_signal(state_root: Path):
    # mutant caught: drop SIGUSR2 (or any other) from sigproxy.PROXIED (its default action kills the CLI)
    created = berth(state_root, "create", "--name", "sigs", "busybox", "sh", "-c", TRAPS)
    assert created.returncode == 0, created.stderr
    fg = Foreground(state_root, "start", "--attach", "sigs")
    try:
        fg.until("ready")
        for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            fg.signal(signum)
            fg.until(f"got {signum.name[3:]}")  # one at a time: a shell may fold two pending traps into one
        fg.signal(signal.SIGTERM)
        code, out, err = fg.finish()
        assert code == 7 and "got TERM" in out, (out, err)
        assert berth(state_root, "inspect", "sigs").returncode == 0  # no --rm: still there
    finally:
        fg.close()


def test_sig_proxy_false_leaves_the_container_alone(state_root: Path):
    # mutant caught: ignore --sig-proxy (always forward): the container would exit 3 and the CLI with it
    fg = Foreground(state_root, "run", "--sig-proxy=false", "--name", "alone", "busybox", "sh", "-c", TRAPS)
    try:
        fg.until("ready")
        fg.signal(signal.SIGINT)
        code, out, err = fg.finish()
        assert code == 130 and "got INT" not in out, (out, err)
        [c] = json.loads(berth(state_root, "inspect", "alone").stdout)
        assert c["state"] == "running"
        assert "got INT" not in berth(state_root, "logs", "alone").stdout
    finally:
        fg.close()


def test_a_container_killed_by_a_signal_makes_the_cli_exit_128_plus_n(state_root: Path):
    # mutant caught: _start_attached mapping a signal's death to 255 (what its docstring used to say)
    fg = Foreground(state_root, "run", "--name", "victim", "busybox", "sh", "-c", "echo ready; sleep 1000 & wait")
    try:
        fg.until("ready")
        assert berth(state_root, "kill", "-s", "KILL", "victim").returncode == 0
        code, out, err = fg.finish()
        assert code == 128 + signal.SIGKILL, (out, err)
    finally:
        fg.close()


def _leftovers(root: Path, cid: str) -> list[str]:
    """What a removed container must not leave: its dirs, runtime and monitor records, cgroup, mounts and
    processes."""
    found = [str(p) for p in (root / "containers" / cid, root / "runtime" / cid,
                              root / "monitor" / "containers" / f"{cid}.json") if p.exists()]
    found += cgroup_dirs(f"/berth/{cid}")
    found += [m for m in host_mounts_under(root) if cid in m]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if cid in (proc / "cgroup").read_text():
                    found.append(f"process {proc.name}")
            except OSError:
                pass  # ended meanwhile
    return found


def test_run_rm_detached_is_removed_by_the_engine_when_it_exits(state_root: Path, tmp_path: Path):
    # mutant caught: no self._spawn_remover(c) in the monitor's _container_exited (nobody removes it then)
    gate = tmp_path / "gate"
    gate.mkdir()
    try:
        # it runs until the test opens the gate, long after the CLI has exited
        r = berth(state_root, "run", "--rm", "-d", "-v", f"{gate}:/gate", "busybox", "sh", "-c",
                  "while [ ! -e /gate/go ]; do sleep 0.05; done; echo bye")
        assert r.returncode == 0, r.stderr
        cid = r.stdout.strip()
        [c] = json.loads(berth(state_root, "inspect", cid).stdout)
        assert c["state"] == "running" and c["config"]["auto_remove"] is True
        assert (state_root / "containers" / cid).is_dir()
        (gate / "go").touch()
        deadline = time.monotonic() + 120
        while (state_root / "containers" / cid).exists():
            assert time.monotonic() < deadline, "the exited --rm -d container was never removed"
            time.sleep(0.05)
        assert _leftovers(state_root, cid) == []
        assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
    finally:
        from tests.support import clean_state_root

        clean_state_root(state_root)


def test_run_rm_refuses_a_restart_policy(state_root: Path):
    # mutant caught: drop the auto_remove/restart_policy rule from ContainerSpec.validate
    for args in (("-d",), ()):
        r = berth(state_root, "run", "--rm", *args, "--restart", "always", "busybox", "true")
        assert r.returncode == 125 and r.stderr.startswith(
            "Error: auto_remove (--rm) cannot be combined with restart policy 'always'"), r.stderr
    assert json.loads(berth(state_root, "ps", "-a", "--json").stdout) == []
