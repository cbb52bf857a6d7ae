"""Idle supervision cost (issue 16): CPU one `supervise()` pass takes with N idle containers, i.e. the
share of a CPU the host agent's reporter (one pass a second) spends while nothing happens.

    sudo .venv/bin/python bench/monitor_supervise.py [--containers 300] [--passes 30] [--repo DIR]

--repo runs the same measure against another checkout (e.g. the tree before a change, from `git archive`).
CPU is this process's user+system time plus that of any runtime command a pass waits for. The
reporter's other periodic work (a full list every 15 passes, for rows the engine lost) is shown apart.
Everything is made under a temporary state root and removed at the end, processes by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=300)
    ap.add_argument("--passes", type=int, default=30)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--runtime", default="runc", choices=["runc", "berth"])
    args = ap.parse_args()
    sys.path.insert(0, args.repo)
    os.environ["PYTHONPATH"] = args.repo
    from workers.engine.containers import ContainerManager
    from workers.engine.images.base import ensure_base_images
    from workers.engine.images.store import ImageStore
    from workers.engine.monitor import MonitorClient

    root = Path(tempfile.mkdtemp(prefix="bsv-", dir="/tmp"))
    m = ContainerManager(root)
    ids: list[str] = []
    try:
        ensure_base_images(ImageStore(root))
        t0 = time.monotonic()
        for i in range(args.containers):
            c = m.create("busybox", id=uuid.uuid4().hex * 2, name=f"idle-{i}", command=["sleep", "100000"],
                         runtime=args.runtime)
            ids.append(c["id"])
            m.start(c["id"])
        print(f"{args.containers} idle containers ({args.runtime}) started in {time.monotonic() - t0:.0f} s "
              f"({args.repo})", flush=True)
        m.supervise()  # the first pass looks at everything (both before and after)
        time.sleep(1)
        c0 = cpu()
        for _ in range(args.passes):
            changed = m.supervise()
            assert not changed, changed
        per_pass = (cpu() - c0) / args.passes
        # the reporter's check for rows the engine lost, every 15 passes: ids only where the tree has it
        check = getattr(m, "known_ids", None)
        what = "known_ids()" if check else "list(all)"
        c0 = cpu()
        check() if check else m.list(all=True)
        listing = cpu() - c0
        total = per_pass + listing / 15
        print(f"supervise(): {per_pass * 1000:.2f} ms CPU per pass = {per_pass * 100:.2f} % of a CPU at one pass "
              f"a second; {what} every 15 passes: {listing * 1000:.0f} ms = {listing / 15 * 100:.2f} % of a CPU; "
              f"reporter total {total * 100:.2f} % of a CPU")
    finally:
        for cid in ids:
            try:
                m.remove(cid, force=True)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"(cleanup: {exc})", file=sys.stderr)
        client = MonitorClient(root)
        for pid in (client.pid(), getattr(client, "holder_pid", lambda: None)()):
            if pid:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
