"""Soak (issue 16; opt-in, `make soak`, never in `make test`): random lifecycle actions on 50 containers through
the engine's ContainerManager, with an invariant check every minute.

    sudo .venv/bin/python tests/soak.py [--minutes 30] [--seed N] [--containers 50]

The seed is printed; the same seed gives the same sequence of actions (not the same timings). Every action is
one the model allows for the container's state, so any error the engine raises is a failure. The check, every
`--check-every` seconds and once at the end:
- every container the engine lists is the one the model expects, in the state the model expects, its on-disk
  record says the same, and its pid is alive when running or paused;
- no mount under the state root, no cgroup, no process, no network namespace, no runtime state and no veth on
  the soak's bridge belongs to a container that is not running or paused (nor to one already removed), and no
  record or network state directory to one removed.
It exits non-zero naming the first broken invariant. Everything is made under a temporary state root and
removed at the end (containers through the engine, then anything left by pid and by path), even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine.conftest import cgroup_dirs, host_mounts_under  # noqa: E402
from tests.engine.containers.conftest import teardown_root  # noqa: E402
from tests.engine.net.conftest import cleanup, ports_of  # noqa: E402
from workers.engine.containers import ContainerManager  # noqa: E402
from workers.engine.containers import states as S  # noqa: E402
from workers.engine.images.base import ensure_base_images  # noqa: E402
from workers.engine.images.store import ImageStore  # noqa: E402

SLEEP = ["sleep", "1000000"]
ID_RE = re.compile(r"[0-9a-f]{64}")
# What each model state allows, and the state the action leads to (None: removed).
MOVES: dict[str | None, dict[str, str | None]] = {
    None: {"create": S.CREATED},
    S.CREATED: {"start": S.RUNNING, "remove": None},
    S.RUNNING: {"stop": S.EXITED, "kill": S.EXITED, "restart": S.RUNNING, "pause": S.PAUSED,
                "exec": S.RUNNING, "remove": None},
    S.PAUSED: {"unpause": S.RUNNING, "remove": None},
    S.EXITED: {"start": S.RUNNING, "restart": S.RUNNING, "remove": None},
}


class Broken(Exception):
    """An invariant does not hold; the message names it."""


class Soak:
    def __init__(self, root: Path, n: int, rng: random.Random) -> None:
        self.m = ContainerManager(root, default_network="bridge")
        self.root, self.n, self.rng = root, n, rng
        self.slots: list[tuple[str, str] | None] = [None] * n  # (id, model state) per slot
        self.ever: set[str] = set()  # every id made, to find what a removed one left behind
        self.made = 0
        self.counts: dict[str, int] = {}

    def step(self) -> None:
        i = self.rng.randrange(self.n)
        slot = self.slots[i]
        state = slot[1] if slot else None
        action = self.rng.choice(sorted(MOVES[state]))
        self.counts[action] = self.counts.get(action, 0) + 1
        nxt = MOVES[state][action]
        if action == "create":
            self.made += 1
            cid = self.m.create("busybox", name=f"soak-{i}-{self.made}", command=SLEEP)["id"]
            self.ever.add(cid)
        else:
            cid = slot[0]
            self._do(action, cid, state)
        self.slots[i] = (cid, nxt) if nxt else None

    def _do(self, action: str, cid: str, state: str) -> None:
        m = self.m
        if action == "exec":
            null = os.open(os.devnull, os.O_RDWR)
            try:
                code = m.exec(cid, ["true"], stdin=null, stdout=null, stderr=null)
            finally:
                os.close(null)
            if code != 0:
                raise Broken(f"exec of `true` in {cid[:12]} exited {code}")
        elif action in ("stop", "restart"):
            getattr(m, action)(cid, timeout=1)  # sleep as pid 1 ignores SIGTERM: the timeout is the stop
        elif action == "remove":
            m.remove(cid, force=state in S.ACTIVE)
        else:
            getattr(m, action)(cid)

    # ---- invariants ------------------------------------------------------------------------------

    def check(self) -> None:
        model = {s[0]: s[1] for s in self.slots if s}
        listed = {v["id"]: v for v in self.m.list(all=True)}
        if set(listed) != set(model):
            extra, missing = set(listed) - set(model), set(model) - set(listed)
            raise Broken(f"containers listed != model: extra {sorted(x[:12] for x in extra)}, "
                         f"missing {sorted(x[:12] for x in missing)}")
        for cid, view in listed.items():
            if view["state"] != model[cid]:
                raise Broken(f"container {view['name']} is {view['state']}, the model says {model[cid]}")
            rec = self.m._load(cid)  # the record on disk, as the engine wrote it
            if rec["state"] != view["state"]:
                raise Broken(f"container {view['name']}: record says {rec['state']}, the engine lists {view['state']}")
            if view["state"] in S.ACTIVE and not _alive(view["pid"]):
                raise Broken(f"container {view['name']} is {view['state']} but its pid {view['pid']} is not alive")
        active = {cid for cid, st in model.items() if st in S.ACTIVE}
        for mp in host_mounts_under(self.root):
            ids = ID_RE.findall(mp)
            if not ids or ids[-1] not in active:
                raise Broken(f"leaked mount {mp} (its container: {model.get(ids[-1]) if ids else None})")
        for cid in self.ever - active:
            if cgroup_dirs(f"/berth/{cid}"):
                raise Broken(f"leaked cgroup /berth/{cid}")
        for pid, cid in _berth_processes(self.ever):
            if cid not in active:
                raise Broken(f"stray process {pid} in the cgroup of container {cid[:12]} (not running)")
        self._check_files(set(model), active)
        nsdir = self.m.net.nsdir
        for ns in nsdir.iterdir() if nsdir.exists() else []:
            if ns.name not in active:
                raise Broken(f"leaked network namespace {ns}")
        bridge = self.m.net.store.get("bridge")["bridge"] if self.made else None
        veths = ports_of(bridge) if bridge else set()
        if len(veths) != len(active):
            raise Broken(f"{len(veths)} veths on {bridge} for {len(active)} running or paused containers")

    def _check_files(self, existing: set[str], active: set[str]) -> None:
        """A container's directory and network state exist while it does; the runtime's state only while
        its process does; nothing half-removed stays."""
        for where, allowed in (("containers", existing), ("net/containers", existing), ("runtime", active)):
            d = self.root / where
            for entry in d.iterdir() if d.exists() else []:
                if entry.name not in allowed and ID_RE.search(entry.name):
                    raise Broken(f"leaked file {entry} (its container: "
                                 f"{'removed' if entry.name[-64:] not in existing else 'not running'})")

    def summary(self) -> str:
        states: dict[str, int] = {}
        for s in self.slots:
            key = s[1] if s else "none"
            states[key] = states.get(key, 0) + 1
        return f"states {dict(sorted(states.items()))}"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _berth_processes(ids: set[str]) -> list[tuple[int, str]]:
    """(pid, container id) of every process on the host whose cgroup is one of `ids`' (/berth/<id>)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "cgroup").read_text()
        except OSError:
            continue
        for cid in ID_RE.findall(text):
            if cid in ids and f"/berth/{cid}" in text:
                out.append((int(entry.name), cid))
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--check-every", type=float, default=60, help="seconds between invariant checks")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("tests/soak.py needs root", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"soak: seed {seed}, {args.containers} containers, {args.minutes} min, a check every "
          f"{args.check_every:g} s (replay: --seed {seed})", flush=True)
    root = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))  # short: the monitor's socket path
    soak = None
    code = 0
    try:
        ensure_base_images(ImageStore(root))
        soak = Soak(root, args.containers, random.Random(seed))
        start = time.monotonic()
        end = start + args.minutes * 60
        next_check, steps, checks = start + args.check_every, 0, 0
        while True:
            now = time.monotonic()
            if now >= next_check or now >= end:
                soak.check()
                checks += 1
                print(f"soak: {now - start:6.0f} s, {steps} actions, check {checks} passed, {soak.summary()}",
                      flush=True)
                next_check += args.check_every
                if now >= end:
                    break
            soak.step()
            steps += 1
        print(f"soak: passed: {steps} actions {dict(sorted(soak.counts.items()))}, {checks} checks", flush=True)
    except Broken as e:
        print(f"soak: FAILED (seed {seed}): {e}", flush=True)
        code = 1
    except Exception as e:  # an engine error on an action the model allows is a failure too
        print(f"soak: FAILED (seed {seed}): {type(e).__name__}: {e}", flush=True)
        code = 1
    finally:
        if soak is not None:
            with contextlib.suppress(Exception):
                cleanup(soak.m)
        teardown_root(root)
        left = host_mounts_under(root)
        if left or root.exists():
            print(f"soak: cleanup left {left or root}", flush=True)
            code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
