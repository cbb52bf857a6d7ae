"""bench/scale.py's stack: Berth as `make run` runs it (redis-server, a migrated SQLite database, the ASGI web
server, the Celery worker of one host with its own state root, busybox seeded), a user with an API token and a
signed-in session, and the readings the bench takes of its processes (/proc/<pid>/stat, smaps_rollup).
Built on bench/console_web.py's FullStack, whose close() stops and removes everything by PID and by path."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from console_web import REPO, FullStack, wait_until

TICK = os.sysconf("SC_CLK_TCK")


class ScaleStack(FullStack):
    """No container at start; `api` is a requests session with the user's token, `cookie` its dashboard session."""

    def _up(self) -> None:
        redis_url = self._start_redis()
        self.host_name = f"bench-scale-{os.getpid()}"
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": f"sqlite:///{self.work / 'berth.sqlite3'}",
            "REDIS_URL": redis_url, "BERTH_STATE_ROOT": str(self.work / "web"), "BERTH_HOST_NAME": self.host_name,
            "BERTH_SECRET_KEY": "berth-bench-scale-" + os.urandom(16).hex(),
            # one user makes a thousand containers: the per-user API rates would refuse it (429) by design
            "BERTH_API_THROTTLE_WRITE": "100000/min", "BERTH_API_THROTTLE_READ": "100000/min"})
        import django

        django.setup()
        logging.getLogger("axes").setLevel(logging.WARNING)
        import requests
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from containers import jobs
        from containers.api.auth import create_token
        from containers.management.commands.berth_run import worker_command
        from containers.models import Host, Job
        from tests.conftest import WorkerHandle, die_with_parent
        from tests.support import start_asgi_server

        call_command("migrate", interactive=False, verbosity=0)
        self.web, port = start_asgi_server(redis_url, self.work / "web", self.work / "web.log")
        self.base = f"127.0.0.1:{port}"
        since = time.time()
        env = {**os.environ, "BERTH_STATE_ROOT": str(self.wroot), "BERTH_CONTROL_URL": f"http://{self.base}",
               "PYTHONPATH": str(REPO)}
        log = self.work / "worker.log"
        with open(log, "ab") as out:  # the worker `make run` starts (berth_run's command line)
            proc = subprocess.Popen(worker_command(self.host_name), cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        self.worker = WorkerHandle(host_name=self.host_name, state_root=self.wroot, proc=proc, log_path=log)

        def heartbeaten():
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}:\n{self.worker.log()[-3000:]}")
            h = Host.objects.filter(name=self.host_name).first()
            return h if h and h.last_heartbeat and h.last_heartbeat.timestamp() >= since - 1 else None

        self.host = wait_until(heartbeaten, 90, "the worker to heartbeat", 0.2)
        self.worker._remember_children()
        self.wait_job = lambda job, timeout=180: wait_until(
            lambda: (job.refresh_from_db() or job.state in Job.FINISHED_STATES) and job, timeout, f"job {job.kind}")
        seeded = self.wait_job(jobs.submit("image.seed", self.host, params={}))
        if seeded.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"image.seed: {seeded.error}")
        self.user = get_user_model().objects.create_user("bench-scale")
        _, token = create_token(self.user, "bench")
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {token}"
        client = Client()
        client.force_login(self.user)
        self.page = requests.Session()  # the dashboard, signed in
        self.page.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)

    def url(self, path: str) -> str:
        return f"http://{self.base}{path}"

    def monitor_pids(self) -> dict[str, int]:
        """The host's monitor and the holder of its containers' pipes, by their PID files."""
        out = {}
        for name in ("monitor", "holder"):
            try:
                out[name] = int((self.wroot / "monitor" / f"{name}.pid").read_text().strip())
            except (OSError, ValueError):
                pass
        return out

    def agent_pids(self) -> dict[str, list[int]]:
        """Who to watch while all idle: the worker's main process (the agent: reporter, heartbeat, stats
        sampler), its pool processes, the monitor and holder, and the web server and redis for scale."""
        self.worker._remember_children()
        pool = [pid for pid, _ in self.worker.known if os.path.exists(f"/proc/{pid}")]
        groups = {"worker (agent)": [self.worker.pid], "worker pool": pool}
        groups.update({k: [v] for k, v in self.monitor_pids().items()})
        groups["web server"] = [self.web.pid]
        groups["redis-server"] = [self.redis_proc.pid]
        return groups

    def staying_kib(self) -> tuple[int, dict[str, int]]:
        """PSS of what a host keeps for its containers: the monitor, the holder and any other host process
        whose command line names this host's state root (a shim, a relay), container processes excluded."""
        host_ns = os.readlink("/proc/self/ns/pid")
        found = dict(self.monitor_pids())
        root = str(self.wroot).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in found.values():
                continue
            try:
                if root in Path(f"/proc/{entry}/cmdline").read_bytes() and \
                        os.readlink(f"/proc/{entry}/ns/pid") == host_ns:
                    comm = Path(f"/proc/{entry}/comm").read_text().strip()
                    found[f"{comm}[{entry}]"] = int(entry)
            except OSError:
                continue
        sizes = {name: pss_kib(pid) for name, pid in found.items()}
        return sum(sizes.values()), sizes


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process (its reaped children not included), in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def idle_cpu(groups: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """Share of one CPU (%) each group of processes spent over `seconds`."""
    before = {name: sum(cpu_ticks(p) for p in pids) for name, pids in groups.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measured window itself: nothing to await
    wall = time.monotonic() - t0
    return {name: (sum(cpu_ticks(p) for p in pids) - before[name]) / TICK / wall * 100
            for name, pids in groups.items()}


if __name__ == "__main__":
    sys.exit("used by bench/scale.py")
