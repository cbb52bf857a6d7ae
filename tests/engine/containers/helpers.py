"""Helpers shared by the container manager tests."""

from __future__ import annotations

from workers.engine.containers import ContainerManager


def output(m: ContainerManager, ref: str, stream: str | None = None) -> str:
    return "".join(r["log"] for r in m.logs(ref) if stream is None or r["stream"] == stream)


def run(m: ContainerManager, script: str, **kw) -> dict:
    """create + start `sh -c script` and wait for it; the final inspect dict."""
    c = m.create("busybox", command=["sh", "-c", script], **kw)
    m.start(c["id"])
    return m.wait(c["id"], timeout=60)
