"""Lifecycle through the API and the runc-compatible CLI: states, errors, cleanup."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest

from tests.engine.conftest import cgroup_dirs, host_mounts_under
from workers.engine.runtime import command as runtime_command  # as the engine and `berth-runtime` run it

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def cli(root, *args, stdin=subprocess.DEVNULL, timeout=60):
    return subprocess.run([*runtime_command(), "--root", str(root), *args],
                          cwd=REPO, capture_output=True, text=True, stdin=stdin, timeout=timeout)


def cli_detached(root, *args):
    """create / run -d: the container inherits stdio, so it must not be our capture pipes."""
    p = subprocess.run([*runtime_command(), "--root", str(root), *args],
                       cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
    return p.returncode


def test_states_and_delete_leaves_nothing(runtime, bundle):
    b = bundle(["sh", "-c", "echo $$ > /tmp/started; exec sleep 1000"])
    cid = runtime.new_id("life")
    st = runtime.create(cid, str(b.path))
    pid = st["pid"]
    assert st["status"] == "created" and pid > 1
    assert runtime.state(cid)["status"] == "created"
    assert not (b.upper / "tmp/started").exists()  # nothing ran before start
    runtime.start(cid)
    assert runtime.state(cid)["status"] == "running"
    assert [s["id"] for s in runtime.list()] == [cid]
    with pytest.raises(Exception, match="not stopped"):
        runtime.delete(cid)
    cgdirs = cgroup_dirs(f"/berth/{cid}")
    assert cgdirs
    runtime.kill(cid, signal.SIGKILL)
    runtime.wait_stopped(cid)
    assert runtime.state(cid)["pid"] == 0
    runtime.delete(cid)
    assert not any(os.path.isdir(d) for d in cgdirs)
    assert not (runtime.root / cid).exists()
    assert host_mounts_under(b.path) == []
    st = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] if os.path.exists(f"/proc/{pid}") else "gone"
    assert st in ("gone", "Z")


def _inits() -> set[int]:
    """Processes named as create's intermediate and init are (sync.INIT_COMM), zombies included."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "berth-init":
                    found.add(int(pid))
        except OSError:
            pass
    return found


def test_a_cgroup_that_cannot_be_made_fails_the_create_and_leaves_no_process(runtime, bundle):
    """The cgroup is made while the forked child sets up its namespaces: when that fails, the child and the
    init it may have forked must go with it (reaped, not zombies), and nothing else stays."""
    import time

    from workers.engine.runtime.errors import RuntimeError_

    b = bundle(["sleep", "100"])
    b.edit(lambda c: c["linux"].setdefault("resources", {}).update(cpu={"cpus": "4095"}))  # no such CPU: EINVAL
    before = _inits()
    cid = runtime.new_id("cgfail")
    with pytest.raises(RuntimeError_):
        runtime.create(cid, str(b.path))
    deadline = time.monotonic() + 5
    while _inits() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _inits() - before == set()
    assert not (runtime.root / cid).exists() and cgroup_dirs(f"/berth/{cid}") == []


def test_delete_of_created_container_kills_init(runtime, bundle):
    b = bundle(["true"])
    cid = runtime.new_id()
    pid = runtime.create(cid, str(b.path))["pid"]
    runtime.delete(cid)
    assert not (runtime.root / cid).exists()
    assert cgroup_dirs(f"/berth/{cid}") == []
    from workers.engine.runtime.state import proc_start_time

    st = proc_start_time(pid)
    assert st is None or st[0] == "Z"


def test_start_twice_and_kill_stopped_are_errors(runtime, bundle):
    from workers.engine.runtime.errors import InvalidState

    b = bundle(["true"])
    cid = runtime.new_id()
    runtime.create(cid, str(b.path))
    runtime.start(cid)
    runtime.wait_stopped(cid)
    with pytest.raises(InvalidState):
        runtime.start(cid)
    with pytest.raises(InvalidState):
        runtime.kill(cid, "KILL")
    runtime.delete(cid)


def test_run_returns_exit_code_and_hooks_get_state(runtime, bundle, tmp_path):
    hook_out = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread s; echo \"$1 $s\" >> {hook_out}\n")
    hook.chmod(0o755)
    b = bundle(["sh", "-c", "exit 3"])
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    b.edit(lambda c: c.update(hooks={k: [{"path": str(hook), "args": ["hook.sh", k]}] for k in kinds}))
    cid = runtime.new_id()
    assert runtime.run(cid, str(b.path)) == 3
    lines = hook_out.read_text().splitlines()
    assert [line.split()[0] for line in lines] == list(kinds)
    state = json.loads(lines[0].split(" ", 1)[1])
    assert state["id"] == cid and state["pid"] > 0 and state["bundle"] == str(b.path)


def test_console_socket_receives_the_pty(runtime, bundle, tmp_path):
    b = bundle(["sh", "-c", "tty; echo hello-from-pty"])
    b.edit(lambda c: c["process"].update(terminal=True))
    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    cid = runtime.new_id("tty")
    try:
        runtime.create(cid, str(b.path), console_socket=sock_path)
        conn, _ = srv.accept()
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        conn.close()
        master = fds[0]
        runtime.start(cid)
        out = b""
        while b"hello-from-pty" not in out:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the slave side is closed
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert b"/dev/pts/0" in out and b"hello-from-pty" in out
    finally:
        srv.close()


@pytest.mark.parametrize("args,expect", [
    (["state", "nope"], "does not exist"),
    (["delete", "nope"], "does not exist"),
    (["start", "nope"], "does not exist"),
    (["kill", "nope", "KILL"], "does not exist"),
    (["pause", "nope"], "does not exist"),
    (["create", "--bundle", "/nonexistent-bundle", "x"], "config.json not found"),
    (["frobnicate"], "No help topic"),
    (["create"], "requires a minimum of 1 argument"),
])
def test_cli_errors_are_one_line(tmp_path, args, expect):
    p = cli(tmp_path / "root", *args)
    assert p.returncode != 0
    assert len(p.stderr.splitlines()) == 1 and expect in p.stderr and "Traceback" not in p.stderr


def test_cli_invalid_json_and_duplicate_id(tmp_path, bundle, runtime):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{bad json")
    p = cli(runtime.root, "create", "--bundle", str(bad), "x")
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "invalid config.json" in p.stderr
    b = bundle(["sleep", "1000"])
    cid = runtime.new_id("dup")
    assert cli_detached(runtime.root, "create", "--bundle", str(b.path), "--pid-file", str(tmp_path / "pid"), cid) == 0
    p = cli(runtime.root, "create", "--bundle", str(b.path), cid)
    assert p.returncode == 1 and "exists" in p.stderr and len(p.stderr.splitlines()) == 1
    state = json.loads(cli(runtime.root, "state", cid).stdout)
    assert state["status"] == "created" and state["pid"] == int((tmp_path / "pid").read_text())
    assert cli(runtime.root, "start", cid).returncode == 0
    assert json.loads(cli(runtime.root, "state", cid).stdout)["status"] == "running"
    p = cli(runtime.root, "delete", cid)
    assert p.returncode == 1 and "not stopped" in p.stderr
    listing = cli(runtime.root, "list", "-q").stdout.split()
    assert listing == [cid]
    assert json.loads(cli(runtime.root, "ps", "--format", "json", cid).stdout) == [state["pid"]]
    assert cli(runtime.root, "kill", cid, "KILL").returncode == 0
    runtime.wait_stopped(cid)
    assert cli(runtime.root, "delete", cid).returncode == 0
    assert cli(runtime.root, "state", cid).returncode == 1


def test_cli_run_exit_code_and_exec(tmp_path, bundle, runtime):
    b = bundle(["sh", "-c", "echo out; echo err >&2; exit 5"])
    p = cli(runtime.root, "run", "--bundle", str(b.path), runtime.new_id())
    assert p.returncode == 5 and p.stdout == "out\n" and p.stderr == "err\n"
    b2 = bundle(["sleep", "1000"])
    cid = runtime.new_id()
    assert cli_detached(runtime.root, "run", "-d", "--bundle", str(b2.path), cid) == 0
    p = cli(runtime.root, "exec", "-e", "FOO=bar", "--cwd", "/etc", cid, "sh", "-c", "echo $FOO $(pwd); exit 4")
    assert p.returncode == 4 and p.stdout == "bar /etc\n"
    p = cli(runtime.root, "exec", cid, "/no/such/binary")
    assert p.returncode != 0 and len(p.stderr.splitlines()) == 1 and "no such file" in p.stderr
    assert cli(runtime.root, "pause", cid).returncode == 0
    assert json.loads(cli(runtime.root, "state", cid).stdout)["status"] == "paused"
    assert cli(runtime.root, "resume", cid).returncode == 0
    assert cli(runtime.root, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs(f"/berth/{cid}") == []


def test_cli_spec_writes_a_config(tmp_path):
    p = cli(tmp_path, "spec", "--bundle", str(tmp_path))
    assert p.returncode == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and "seccomp" not in cfg["linux"]
    again = cli(tmp_path, "spec", "--bundle", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr


def test_cli_run_with_terminal_proxies_the_pty(tmp_path, bundle, runtime):
    b = bundle(["sh", "-c", "tty; echo from-tty; exit 3"])
    b.edit(lambda c: c["process"].update(terminal=True))
    p = cli(runtime.root, "run", "--bundle", str(b.path), runtime.new_id("tty"))
    assert p.returncode == 3, p.stderr
    assert p.stdout.replace("\r", "").splitlines() == ["/dev/pts/0", "from-tty"]


def test_cli_exec_with_tty_proxies_the_pty(tmp_path, bundle, runtime):
    b = bundle(["sleep", "1000"])
    cid = runtime.new_id("ttyexec")
    assert cli_detached(runtime.root, "run", "-d", "--bundle", str(b.path), cid) == 0
    p = cli(runtime.root, "exec", "-t", cid, "sh", "-c", "tty; exit 6")
    assert p.returncode == 6, p.stderr
    assert p.stdout.replace("\r", "").startswith("/dev/pts/")
