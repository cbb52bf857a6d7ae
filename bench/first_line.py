"""What a user feels (issue 16): from the API request to the container's first log line in the browser's log view,
beside podman's `run -d` + `logs -f` on the same machine.

    sudo .venv/bin/python bench/first_line.py [--runs 10]

Berth as `make run` runs it (bench/scale_stack.py: redis-server, the ASGI server, one Celery worker, busybox
seeded). Each round: POST /api/v1/containers (busybox `sh -c 'echo first-line; exec sleep 1000000'`, started),
then what the container page does, a WebSocket to /ws/containers/<pk>/logs/ with the session cookie, and the clock
stops when a message carries the line, whether it came in the page's replay of the last lines or live. Beside it,
interleaved round by round, podman (runc, netavark bridge, its own root): `podman run -d` of the same command,
then `podman logs -f` until the line is printed. Medians; every container is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale import remove_all
from scale_podman import LIMITS, Podman
from scale_stack import ScaleStack

from tests.cgroup_parent import parent_removed_if_made

LINE = "first-line"
SCRIPT = f"echo {LINE}; exec sleep 1000000"


async def _first_line(url: str, headers: dict[str, str], timeout: float = 60) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None) as ws:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if msg.get("type") == "error":
                raise RuntimeError(f"log stream: {msg.get('message')}")
            if any(line.get("log", "").strip() == LINE for line in msg.get("lines") or []):
                return


def berth_round(stack: ScaleStack, i: int) -> tuple[float, float, int]:
    """(ms to the POST's answer, ms to the first line in the log view, the row's pk)."""
    from django.conf import settings

    t = time.perf_counter()
    r = stack.api.post(stack.url("/api/v1/containers"), json={
        "image": "busybox:latest", "host": stack.host_name, "name": f"first-{i}", "command": ["sh", "-c", SCRIPT]})
    if r.status_code != 202:
        raise RuntimeError(f"create first-{i}: {r.status_code} {r.text[:300]}")
    posted = (time.perf_counter() - t) * 1000
    pk = r.json()["container"]["id"]
    cookie = f"{settings.SESSION_COOKIE_NAME}={stack.page.cookies[settings.SESSION_COOKIE_NAME]}"
    headers = {"Cookie": cookie, "Origin": f"http://{stack.base}"}
    asyncio.run(_first_line(f"ws://{stack.base}/ws/containers/{pk}/logs/", headers))
    return posted, (time.perf_counter() - t) * 1000, pk


def podman_round(podman: Podman) -> float:
    """ms from `podman run -d` to `podman logs -f` printing the line."""
    t = time.perf_counter()
    cid = podman._ok(["run", "-d", *LIMITS, "bbx", "/bin/busybox", "sh", "-c", SCRIPT])
    logs = subprocess.Popen(podman.base + ["logs", "-f", cid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for raw in logs.stdout:
            if raw.decode(errors="replace").strip() == LINE:
                break
        else:
            raise RuntimeError("podman logs ended without the line")
        return (time.perf_counter() - t) * 1000
    finally:
        logs.kill()
        logs.wait()
        podman._ok(["rm", "-f", "-t", "0", cid])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/first_line.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bf-", dir="/tmp"))  # short: the monitor's socket path
    stack = podman = None
    try:
        stack = ScaleStack(work)
        podman = Podman(work / "podman")
        pks = [berth_round(stack, 0)[2]]  # the host's monitor and holder start with the first container
        posted, first, pod = [], [], []
        for i in range(1, args.runs + 1):
            p, f, pk = berth_round(stack, i)
            posted.append(p)
            first.append(f)
            pks.append(pk)
            if podman.problem is None:
                pod.append(podman_round(podman))
        print(f"API request to the first log line in the browser's log view, median of {args.runs}; load "
              f"{os.getloadavg()[0]:.2f}")
        print(f"  berth: POST answered {statistics.median(posted):.0f} ms, first line {statistics.median(first):.0f} ms")
        if pod:
            med = statistics.median(pod)
            print(f"  podman run -d + logs -f: first line {med:.0f} ms; Berth / podman = "
                  f"{statistics.median(first) / med:.2f}")
        else:
            print(f"  podman: {podman.problem}")
        remove_all(stack, pks, len(pks))
    finally:
        if podman is not None:
            podman.close()
        if stack is not None:
            stack.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    with parent_removed_if_made():  # the runtime's /berth parent, if this run made it
        code = main()
    sys.exit(code)
