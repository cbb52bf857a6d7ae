"""The runtime's command line as the engine runs it (`runtime.command()`: __main__.py by path under `python -S`)
runs containers, and its start leaves out what made it 2.2× runc (bench/README.md, bench/runtime.py): site,
runpy, and json/re/enum/contextlib, whose parts it takes from jsonfast and _signal instead."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workers.engine import runtime as runtime_pkg
from workers.engine.runtime import jsonfast
from workers.engine.runtime.api import parse_signal
from workers.engine.runtime.errors import InvalidState

REPO = Path(__file__).resolve().parents[3]
LEFT_OUT = {"site", "runpy", "json", "re", "enum", "contextlib", "signal", "typing", "functools", "collections"}


def _imported(stderr: str) -> set[str]:
    """Module names from `-X importtime` lines (`import time: self | cumulative | name`)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")
            and "|" in line and not line.rstrip().endswith("imported package")}


@pytest.mark.root
def test_the_command_runs_a_container_without_loading_what_slows_its_start(runtime, bundle):
    b = bundle(["sh", "-c", "echo in-container; exit 3"])
    cid = runtime.new_id("cmd")
    cmd = runtime_pkg.command()
    assert cmd[1] == "-S" and cmd[2].endswith("workers/engine/runtime/__main__.py")
    r = subprocess.run([cmd[0], "-S", "-X", "importtime", *cmd[2:], "--root", str(runtime.root), "run", "--bundle",
                        str(b.path), cid], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       cwd="/")  # not the checkout: the file finds it by its own path
    assert r.returncode == 3, r.stderr[-2000:]
    assert r.stdout == "in-container\n"
    loaded = _imported(r.stderr)
    assert {"workers.engine.runtime.api", "workers.engine.runtime.init", "ctypes", "_json"} <= loaded
    assert loaded & LEFT_OUT == set()


@pytest.mark.root
def test_the_command_loads_site_when_a_config_asks_for_seccomp(runtime, bundle):
    """pyseccomp lives in site-packages, which `-S` leaves off sys.path: seccomp_filter adds site then."""
    b = bundle(["mkdir", "/tmp/made"])
    b.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                               "errnoRet": 1}]}
    b.save()
    cid = runtime.new_id("sec")
    r = subprocess.run([*runtime_pkg.command(), "--root", str(runtime.root), "run", "--bundle", str(b.path), cid],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd="/")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, (r.returncode, r.stderr[-2000:])
    assert not (b.upper / "tmp/made").exists()


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return rng.choice([0, -7, 2**70, 3.25, -1e-300, 1e300, float("inf"), float("-inf"), True, False, None, "",
                           "plain", 'quote " and \\ back', "line\nbreak\ttab\x01", "é ü 中 \U0001f600"])
    if pick < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "b", "é", "\x02", "k k"]): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_jsonfast_reads_and_writes_what_json_does():
    rng = random.Random(16)  # fixed: the same 2,000 values every run
    for _ in range(2000):
        value = _value(rng)
        text = json.dumps(value)
        assert jsonfast.dumps(value) == text
        assert repr(jsonfast.loads(text)) == repr(json.loads(text))  # repr: NaN-free values compare by content
        assert repr(jsonfast.loads(f" \n{text}\t\r ".encode())) == repr(json.loads(text))
    assert jsonfast.dumps({1: 2, 2.5: "x", None: [], False: {}}) == json.dumps({1: 2, 2.5: "x", None: [], False: {}})


@pytest.mark.parametrize("bad", ["", "  ", "{", "[1,]", '{"a": 1} x', '"\x01"', "tru", b"\xff\xfe{", b'{"a": "\xc3"}'])
def test_jsonfast_refuses_what_json_refuses_with_its_message(bad):
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    with pytest.raises(ValueError) as ours:
        jsonfast.loads(bad)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_jsonfast_refuses_with_json_s_error_where_json_was_never_imported():
    """The C scanner raises json.decoder's error only when json.decoder is already loaded, as in this process."""
    code = ("import sys; from workers.engine.runtime import jsonfast\n"
            "try: jsonfast.loads(b'{\"ociVersion\": \"1.0\" x}')\n"
            "except ValueError as e: print(type(e).__name__, e, 're' in sys.modules)")
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.stdout == "JSONDecodeError Expecting ',' delimiter: line 1 column 22 (char 21) True\n", r.stderr


def test_jsonfast_refuses_what_json_cannot_write():
    for value in ({1j: 1}, object(), {"a": {1, 2}}):
        with pytest.raises(TypeError):
            jsonfast.dumps(value)


def test_signals_by_name_number_and_realtime_offset():
    assert parse_signal("KILL") == parse_signal("sigkill") == parse_signal("9") == signal.SIGKILL
    assert parse_signal(" usr1 ") == signal.SIGUSR1
    assert parse_signal("SIGRTMIN") == signal.SIGRTMIN
    assert parse_signal("RTMIN+3") == signal.SIGRTMIN + 3 and parse_signal("SIGRTMAX-1") == signal.SIGRTMAX - 1
    for bad in ("FOO", "SIG_DFL", "_BLOCK", "NSIG", "SIG", "", "RTMIN+x"):
        with pytest.raises(InvalidState, match="unknown signal"):
            parse_signal(bad)


def test_the_seam_takes_both_forms_of_the_command_for_berth_s_runtime():
    """Monitor records keep the command they were started with: `-m` before runtime.command(), by path after."""
    from workers.engine.containers import oci

    assert oci.is_berth_command([*runtime_pkg.command(), "--root", "/r"])
    assert oci.is_berth_command([sys.executable, "-m", "workers.engine.runtime", "--root", "/r"])
    assert not oci.is_berth_command(["/usr/sbin/runc", "--root", "/r"])
    assert not oci.is_berth_command([sys.executable, "-S", "/tmp/__main__.py", "--root", "/r"])
