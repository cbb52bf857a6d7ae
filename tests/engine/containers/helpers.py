"""Helpers shared by the container manager tests."""

from __future__ import annotations

from workers.engine.containers import ContainerManager


def output(m: ContainerManager, ref: str, stream: str | None = None) -> str:
    return "".join(r["log"] for r in m.logs(ref) if stream is None or r["stream"] == stream)


def run(m: ContainerManager, script: str, image: str = "busybox", **kw) -> dict:
    """create + start `sh -c script` and wait for it; the final inspect dict."""
    c = m.create(image, command=["sh", "-c", script], **kw)
    m.start(c["id"])
    return m.wait(c["id"], timeout=60)


def wait_for_line(m: ContainerManager, ref: str, text: str) -> None:
    """Follow the logs until a line holding `text` (the container got that far)."""
    for rec in m.logs(ref, follow=True):
        if text in rec["log"]:
            return
    raise AssertionError(f"container ended before printing {text!r}: {output(m, ref)!r}")


def supervise_until(m: ContainerManager, predicate, what: str, limit: float = 60.0) -> list[dict]:
    """Run supervise passes until predicate(inspect) holds; every change seen, in order."""
    import time

    seen: list[dict] = []
    deadline = time.monotonic() + limit
    while True:
        seen += m.supervise()
        if predicate():
            # the predicate's own inspect may have brought the record up to date (and saved it) after
            # this pass looked: one more pass reports that change too
            return seen + m.supervise()
        if time.monotonic() > deadline:
            raise AssertionError(f"supervise never reached: {what}")
        time.sleep(0.05)


def supervise_passes(m: ContainerManager, n: int = 3) -> None:
    """`n` supervise passes: with the `instant_restarts` fixture, enough for any restart the policy
    decides on to have happened."""
    for _ in range(n):
        m.supervise()
