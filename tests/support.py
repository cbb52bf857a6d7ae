"""Plain helpers shared by several test directories (fixtures live in conftest.py files).

``start_asgi_server(env, log_path)`` starts the same ASGI server `make run` uses, on a port it holds;
``dead_port()`` holds a loopback port where nothing answers;
``clean_state_root(root)`` removes every container of a host state root and stops its monitor by PID;
``berth_cgroups()`` lists the runtime's shared /berth cgroup dirs; ``busybox_tarball(dir)`` makes a
root-filesystem tarball of busybox for import tests.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from containers.management.commands.berth_run import asgi_server_command
from tests.conftest import die_with_parent
from tests.postgres import database_url

REPO = Path(__file__).resolve().parent.parent


def start_asgi_server(redis_url: str, state_root: Path, log_path: Path, timeout: float = 60,
                      **extra_env: str) -> tuple[subprocess.Popen, int]:
    """Serve webapp.asgi on a free loopback port, sharing this test's database (SQLite file or PostgreSQL) and `redis_url`,
    with its own `state_root` (`extra_env` adds or overrides variables); returns once it accepts
    connections. The caller stops it with tests.conftest.stop_process."""
    from django.conf import settings
    from django.db import connection

    from containers.transfer_files import transfer_dir

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings",
           "DATABASE_URL": database_url(connection.settings_dict), "REDIS_URL": redis_url,
           "BERTH_STATE_ROOT": str(state_root), "BERTH_SECRET_KEY": settings.SECRET_KEY, "PYTHONPATH": str(REPO),
           # one staging dir with this process's web side (the live_server workers reach): two web servers, one disk
           "BERTH_TRANSFER_DIR": str(transfer_dir()), **extra_env}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by Playwright's sync API in the test process only
    # Bound here on port 0 and handed over: no other process can take the port between choosing and serving.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(asgi_server_command("127.0.0.1", port, fd=sock.fileno()), cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent, pass_fds=[sock.fileno()])
    deadline = time.monotonic() + timeout
    while True:
        # The socket accepts connections from the start (the kernel queues them): ready is an HTTP answer.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/login/")
            conn.getresponse().read()
            return proc, port
        except (OSError, http.client.HTTPException):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                pytest.fail(f"the ASGI server did not come up:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        finally:
            conn.close()


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A loopback port where nothing answers, held for the block: bound but not listening, so connecting
    is refused and no other process (a parallel test's server) can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def clean_state_root(root: Path) -> None:
    """Remove every container and volume of `root` through the engine (a sized volume is a mounted
    filesystem), then stop its monitor by the PID it wrote."""
    from workers.engine.containers import ContainerManager, volumes

    if (root / "containers").is_dir():
        mgr = ContainerManager(root)
        for info in mgr.list(all=True):
            try:
                mgr.remove(info["id"], force=True)
            except Exception as exc:  # kill its process by pid, keep cleaning the rest
                print(f"cleanup: could not remove {info['id'][:12]} under {root}: {exc}")
                if info.get("pid"):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(info["pid"], signal.SIGKILL)
        try:  # a create the test did not wait for, cut short by the worker's kill at the test's end
            mgr.sweep_half_made()
        except Exception as exc:
            print(f"cleanup: half-made containers under {root} not undone: {exc}")
    if (root / "net" / "networks").is_dir():  # what a failed remove left of networking: rules, bridges
        from workers.engine.net import NetworkManager

        try:
            NetworkManager(root).dismantle()
        except Exception as exc:
            print(f"cleanup: networking of {root} not dismantled: {exc}")
    if (root / "volumes").is_dir():
        for vol in volumes.list_volumes(root):
            try:
                volumes.remove(root, vol["id"], force=True)
            except Exception as exc:
                print(f"cleanup: could not remove volume {vol['id'][:12]} under {root}: {exc}")
    for name, marker in (("monitor.pid", "workers.engine.monitor"), ("holder.pid", "holder.py")):
        try:  # the monitor, then the holder that keeps its containers' pipes (monitor/holder.py)
            pid = int((root / "monitor" / name).read_text().strip())
        except (OSError, ValueError):
            continue
        if marker in _proc_cmdline(pid):
            os.kill(pid, signal.SIGKILL)


def berth_cgroups() -> set[str]:
    """The runtime's shared cgroup parent /berth in every hierarchy where it exists."""
    from workers.engine.runtime.cgroups import Cgroup

    return {d for d in Cgroup.for_path("/berth").dirs.values() if os.path.isdir(d)}


def busybox_tarball(workdir: Path, compress: str = "") -> bytes:
    """A busybox root filesystem as a tar archive (`compress` "gz" for tar.gz)."""
    from workers.engine.images.busybox import make_busybox_rootfs

    rootfs = make_busybox_rootfs(workdir / "rootfs")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}" if compress else "w") as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name)
    return buf.getvalue()
