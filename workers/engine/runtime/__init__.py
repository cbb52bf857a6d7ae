"""Berth's native OCI runtime: an OCI bundle in, an isolated, limited process out.

`api.Runtime` is the in-process API the engine uses; `python -m workers.engine.runtime`
(console command `berth-runtime`; `command()` below) is a runc-compatible command line over it.
Nothing is imported here so that the command line starts fast.

Process model (like runc): `create` forks an intermediate process that joins/unshares
the namespaces and forks the container init (pid 1 of a new pid namespace); init sets
up the root filesystem, pivots into it, drops privileges and blocks on `exec.fifo`
until `start` opens it, then loads seccomp and execs. The intermediate process exits,
so init is reparented to a subreaper (the monitor) or host pid 1.

Container init for zombie reaping: when config.json has the annotation
`org.berth.init=1`, the host's static catatonit is bind-mounted into /dev and run as
pid 1 with the process args after `--`; without catatonit a minimal Python init
(`reaper.py`) forks the process, forwards signals and reaps.
"""


def command() -> list[str]:
    """The runtime's command line as the engine and `berth-runtime` run it: __main__.py by its path, under
    `python -S` (site and runpy are a fifth of a start; pyseccomp, in site-packages, adds site when needed)."""
    import os
    import sys

    return [sys.executable, "-S", os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")]
