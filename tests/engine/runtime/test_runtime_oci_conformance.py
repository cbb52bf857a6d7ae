"""OCI conformance bugs found by runtime-tools, each reproduced with a bundle through the runc-compatible
CLI (a fresh interpreter, as runtime-tools runs it: nothing is imported beforehand by pytest)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MAPPED = 200000


def cli(root, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.engine.runtime", "--root", str(root), *args],
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def _user_namespace_bundle(bundle, args):
    b = bundle(args, overlay=False)

    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": MAPPED, "size": 65536}]
        c["mounts"] = [m for m in c["mounts"] if m["type"] not in ("sysfs", "mqueue")]

    b.edit(userns)
    for parent in b.path.parents:  # pytest's tmp dirs are 0700: let the mapped root traverse them
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o001)
    for dirpath, dirnames, filenames in os.walk(b.rootfs):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), MAPPED, MAPPED)
    os.lchown(b.rootfs, MAPPED, MAPPED)
    return b


@pytest.mark.parametrize("hook", [False, True], ids=["plain", "createContainer-hook"])
def test_new_user_namespace_from_a_fresh_interpreter(runtime, bundle, hook):
    # linux_ns_nopath / linux_uid_mappings: the mapped root (host uid 200000) cannot read the interpreter's
    # directory (/root is 0700 here), so nothing may be imported once the user namespace is entered
    # (lo is brought up with socket/fcntl; a createContainer hook runs, from the init, with subprocess).
    interp = os.path.realpath(sys.executable)
    assert any(not os.stat(p).st_mode & 0o001 for p in _parents(interp)), \
        f"control: {interp} must be out of the mapped uid's reach for this test to mean anything"
    b = _user_namespace_bundle(bundle, ["sh", "-c", "cat /proc/self/uid_map; id -u"])
    if hook:
        b.edit(lambda c: c.update(hooks={"createContainer": [{"path": "/bin/true"}]}))
    p = cli(runtime.root, "run", "--bundle", str(b.path), runtime.new_id("userns"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", str(MAPPED), "65536", "0"]


def _parents(path: str) -> list[str]:
    out = []
    while path != "/":
        path = os.path.dirname(path)
        out.append(path)
    return out


def test_an_einval_from_the_rootfs_bind_mount_reaches_the_user(runtime, bundle):
    # An unbindable root makes the bind of root.path onto itself fail with EINVAL inside the init; that
    # error must be the message, not the EPIPE of the runtime's next write to the init that has gone.
    b = bundle(["true"], overlay=False)
    b.edit(lambda c: c["linux"].update(rootfsPropagation="unbindable"))
    p = cli(runtime.root, "run", "--bundle", str(b.path), runtime.new_id("einval"))
    assert p.returncode != 0
    assert "Invalid argument" in p.stderr and str(b.rootfs) in p.stderr, p.stderr
    assert "Broken pipe" not in p.stderr


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
def test_a_failing_hook_is_a_warning_and_the_next_hooks_run(runtime, bundle, tmp_path, kind):
    # The spec: if a poststart/poststop hook fails, the runtime logs a warning and goes on (the remaining
    # hooks and the lifecycle continue).
    failing = tmp_path / "failing-hook"
    failing.write_text("#!/bin/sh\necho the-hook-said-no >&2\nexit 3\n")
    marking = tmp_path / "marking-hook"
    marker = tmp_path / "marker"
    marking.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    for f in (failing, marking):
        f.chmod(0o755)
    b = bundle(["true"])
    b.edit(lambda c: c.update(hooks={kind: [{"path": str(failing)}, {"path": str(marking)}]}))
    p = cli(runtime.root, "run", "--bundle", str(b.path), runtime.new_id("hooks"))
    assert p.returncode == 0, p.stderr
    assert marker.read_text() == "ran\n"  # the hook after the failing one ran, once
    warnings = [line for line in p.stderr.splitlines() if "level=warning" in line]
    assert len(warnings) == 1 and f"{kind} hook {failing} exited with status 3: the-hook-said-no" in warnings[0]
