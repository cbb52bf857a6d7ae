"""Move benchmark (issue 18): a running container with a large image and changes moved between two hosts on this
machine, against the manual floor, and the bytes a second move sends when the target has the image.

    sudo .venv/bin/python bench/move.py [--image-mb 200] [--changes-mb 50] [--warm-mib 0]

Real and local: redis-server, a migrated SQLite database, the ASGI server of `make run` (the control plane's
transfers go through it), two Celery workers (hosts a and b, own state roots and queues), as
bench/console_web.FullStack starts one. The image is busybox plus --image-mb of incompressible data (an
image.import job); the container writes --changes-mb into its upper dir and runs `sleep`.
1. move a -> b through the services (the job: blobs asked, stop, the pack streamed through the web server's relay
   while the target unpacks it, create and start there, source removed), timed from the request to the job's end
   (its `finished`, as its worker wrote it: the bench looks at the job every 0.1 s);
2. the floor: the same bytes by hand on the same disk: `tar -c | tar -x` of the image's layer dir and of the
   container's upper dir, plus a container start on b (the engine's create + start of the moved image);
   the durable floor: the same with the copy flushed to the disk (syncfs) before the start, what a move
   must do before it deletes the source's copy (a crash of the target must not lose the only one);
   and the relayed floor: the durable floor plus the rest of what issue 18 holds a move to, done by C tools
   (relayed_seconds: every byte through a third process, socat, as through the control plane; the layer's tar
   kept as a blob and every tar hashed on the target, tee and `openssl dgst -sha256`); each floor timed
   --floors times, in turn, and its median quoted (one alone varied from 0.35 to 0.70 s on this VM);
3. move b -> a: a has the image's layer, so only the manifest, the config and the changes should travel.
Everything is stopped by PID and removed by path at the end. Right before each timed part the machine's dirty
pages are flushed (sync): on one disk, a syncfs of the target would otherwise also write what the source or the
previous part left dirty (the container's changes), which two machines would not.

--warm-mib N: right before each timed part (each move, each floor), N MiB are written to a file on the same
filesystem and the file removed. On this VM a page the guest has freed is handed back to the hypervisor within
seconds (free page reporting), and the next write to a new page costs about 30 us instead of 1 (250 MiB of page
cache: 1.5-2.1 s after a few idle seconds, 0.05-0.07 s right after another write freed the same amount). The floor
runs right after the move freed its pages, so without this the two are timed on different memory; with it, all
on recycled pages. The relayed floor needs socat and openssl (Debian's packages, installed by `make`)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.console_web import FullStack, wait_until  # noqa: E402


class TwoHosts(FullStack):
    """FullStack's redis, database and web server, with two workers (hosts a and b) and no container."""

    def _up(self) -> None:
        redis_url = self._start_redis()
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": f"sqlite:///{self.work / 'berth.sqlite3'}",
            "REDIS_URL": redis_url, "BERTH_STATE_ROOT": str(self.work / "web"), "BERTH_HOST_NAME": "bench-web",
            "BERTH_SECRET_KEY": "berth-bench-move-" + os.urandom(16).hex()})
        import django

        django.setup()
        from django.core.management import call_command

        from containers.models import Job
        from tests.support import start_asgi_server

        call_command("migrate", interactive=False, verbosity=0)
        self.web, port = start_asgi_server(redis_url, self.work / "web", self.work / "web.log")
        self.base = f"127.0.0.1:{port}"
        self.workers = {}
        for name in ("a", "b"):
            self.workers[name] = self._worker(f"bench-move-{os.getpid()}-{name}", self.work / name)
        self.wait_job = lambda job, timeout=600: wait_until(
            lambda: (job.refresh_from_db() or job.state in Job.FINISHED_STATES) and job, timeout, f"job {job.kind}")

    def _worker(self, host_name: str, root: Path):
        from containers.models import Host
        from tests.conftest import WorkerHandle, die_with_parent

        since = time.time()
        env = {**os.environ, "BERTH_STATE_ROOT": str(root), "BERTH_CONTROL_URL": f"http://{self.base}",
               "BERTH_HOST_NAME": host_name, "PYTHONPATH": str(REPO)}
        log = self.work / f"{host_name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", f"host.{host_name}",
                 "-n", f"{host_name}@%h", "--concurrency", "2", "--loglevel", "INFO", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)
        handle = WorkerHandle(host_name=host_name, state_root=root, proc=proc, log_path=log)

        def heartbeaten():
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}:\n{handle.log()[-3000:]}")
            h = Host.objects.filter(name=host_name).first()
            return h if h and h.last_heartbeat and h.last_heartbeat.timestamp() >= since - 1 else None

        wait_until(heartbeaten, 90, f"worker {host_name} to heartbeat", 0.2)
        handle._remember_children()
        return handle

    def close(self) -> None:
        from tests.conftest import stop_process
        from tests.engine.containers.conftest import teardown_root
        from tests.support import clean_state_root

        for handle in getattr(self, "workers", {}).values():
            handle.stop(timeout=10)
        if self.web is not None:
            stop_process(self.web)
        for handle in getattr(self, "workers", {}).values():
            if handle.state_root.exists():
                clean_state_root(handle.state_root)
                teardown_root(handle.state_root)
        self.web = None
        super().close()


def image_tar(path: Path, work: Path, mib: int) -> None:
    """busybox's root filesystem plus `mib` MiB of incompressible data in /payload.bin."""
    from workers.engine.images.busybox import make_busybox_rootfs

    rootfs = make_busybox_rootfs(work / "rootfs")
    with open(rootfs / "payload.bin", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    with tarfile.open(path, "w") as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name)
    shutil.rmtree(rootfs)


def warm(scratch: Path, mib: int) -> None:
    """Write `mib` MiB to a new file and remove it: its freed pages are the next writes' (see --warm-mib)."""
    if mib <= 0:
        return
    block = os.urandom(1 << 20)
    path = scratch / "warm.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, block)
    finally:
        os.close(fd)
        path.unlink()


def settled(scratch: Path, mib: int) -> None:
    """Right before a timed part: recycled pages (see --warm-mib), nothing dirty left by what came before."""
    warm(scratch, mib)
    os.sync()


def floor_seconds(layer_dir: str, upper_dir: str, scratch: Path, start, durable: bool = False) -> float:
    """`tar | tar` of the layer dir and the upper dir, then `start()`; durable: the copies flushed before it."""
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, src in enumerate((layer_dir, upper_dir)):
        dest = scratch / f"copy{i}"
        dest.mkdir()
        subprocess.run(f"tar -C {src} -cf - . | tar -C {dest} -xf -", shell=True, check=True)
    return copied(scratch, t0, start, durable)


def copied(scratch: Path, t0: float, start, durable: bool) -> float:
    """A floor's end, once its copies are made: the flush if durable, the start; seconds since t0."""
    from workers.engine.images.fsutil import syncfs

    if durable:
        syncfs(scratch)
    start()
    took = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return took


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports free right now (all held at once while they are picked)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# The relayed floor's parts, added one by one under --ablation: (row, hashed, blob kept, flushed)
RELAYED_PARTS = [("relay: tar | socat | socat | tar + start", False, False, False),
                 ("  + syncfs before the start", False, False, True),
                 ("  + sha256 of each tar (tee, openssl)", True, False, True),
                 ("  + the layer's tar kept: the relayed floor", True, True, True)]


def relayed_seconds(layer_dir: str, upper_dir: str, scratch: Path, start, hashed: bool = True, blob: bool = True,
                    durable: bool = True) -> float:
    """The floor with the work a move is held to besides `tar | tar`, done by C tools: every byte through a third
    process on loopback (socat, as the control plane's relay), the layer's tar kept as a blob and each tar hashed
    on the target (tee, `openssl dgst -sha256`), the copies flushed (syncfs) before the start. No relay file, no
    Python, none of the move's other steps (stop, blob list, create, the source's removal). `hashed`, `blob`,
    `durable` False leave that part out (--ablation)."""
    scratch.mkdir(parents=True)
    sock = "socat -b 1048576"
    t0 = time.perf_counter()
    for i, (src, layer) in enumerate(((layer_dir, True), (upper_dir, False))):
        dest, (near, far) = scratch / f"copy{i}", free_ports(2)
        dest.mkdir()
        keep = f"{dest}.blob " if blob and layer else ""
        tee = f"tee {keep}>(openssl dgst -sha256 > {dest}.sum) | " if hashed else (f"tee {keep}| " if keep else "")
        procs = []
        try:
            procs.append(subprocess.Popen(
                ["bash", "-c", f"{sock} TCP-LISTEN:{far},bind=127.0.0.1,reuseaddr - | {tee}tar -C {dest} -xf -"]))
            procs.append(subprocess.Popen(
                [*sock.split(), f"TCP-LISTEN:{near},bind=127.0.0.1,reuseaddr",
                 f"TCP:127.0.0.1:{far},retry=1000,interval=0.001"]))
            subprocess.run(["bash", "-c", f"set -o pipefail; tar -C {src} -cf - . | "
                            f"{sock} - TCP:127.0.0.1:{near},retry=1000,interval=0.001"], check=True)
            for proc in reversed(procs):
                if proc.wait(60) != 0:
                    raise RuntimeError(f"relayed floor: {proc.args} exited with {proc.returncode}")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return copied(scratch, t0, start, durable)


def fmt(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)


def breakdown(job) -> dict[str, float]:
    """Where a move's time went, from the move job's own clock (its result's `seconds`: the blob list asked and
    the container stopped, which overlap; the pack shipped and the receive waited for; the source's remove) and
    the receive's (the pack read and unpacked as it arrived, with the create; the start)."""
    from containers.models import Job

    receive = Job.objects.filter(kind="container.receive", params__chain=job.pk).first()
    out = {"queue wait": (job.started - job.created).total_seconds()}
    result = job.result or {}
    for part, seconds in (result.get("seconds") or {}).items():
        out[part] = seconds
    if result.get("ship_seconds") is not None:
        out["  source: pack + push"] = result["ship_seconds"]
    if receive is not None and receive.started and receive.finished:
        out["  receive job (target)"] = (receive.finished - receive.started).total_seconds()
        for part, seconds in ((receive.result or {}).get("seconds") or {}).items():
            out[f"  of which {part}"] = seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-mb", type=int, default=200)
    parser.add_argument("--changes-mb", type=int, default=50)
    parser.add_argument("--warm-mib", type=int, default=0, help="see the module docstring (0: no warming)")
    parser.add_argument("--floors", type=int, default=3, help="times each floor is timed (its median is quoted)")
    parser.add_argument("--ablation", action="store_true",
                        help="also time the relayed floor with its parts added one by one (RELAYED_PARTS)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-move-"))
    stack = None
    try:
        stack = TwoHosts(work)
        from django.contrib.auth import get_user_model

        from containers import services
        from containers.models import Container, Job
        from tests.transfers import submit_upload
        from workers.engine.containers import ContainerManager
        from workers.engine.images.store import ImageStore

        a, b = stack.workers["a"], stack.workers["b"]
        user = get_user_model().objects.create_user("bench-mover")
        tar = work / "image.tar"
        image_tar(tar, work, args.image_mb)
        job, _ = submit_upload("image.import", a.host, tar.read_bytes(), requested_by=user, ref="big:1")
        tar.unlink()
        if stack.wait_job(job).state != Job.State.SUCCEEDED:
            raise RuntimeError(f"import: {job.error}")
        # It ends on SIGTERM at once (a bare `sleep` as pid 1 ignores it: the move's stop would wait its 10 s out).
        # Its changes are written once: started again on the target, it finds them (as a moved database would).
        script = (f"test -e /ready || {{ head -c {args.changes_mb << 20} /dev/urandom > /changes.bin && touch /ready; }}; "
                  "trap 'exit 0' TERM; sleep 100000 & wait")
        row, job = services.create_container(user, host=a.host, image="big:1", name="mover",
                                             command=["sh", "-c", script])
        if stack.wait_job(job).state != Job.State.SUCCEEDED:
            raise RuntimeError(f"create: {job.error}")
        mgr_a = ContainerManager(a.state_root)
        upper = mgr_a.rootfs(row.engine_id)["upperdir"]
        wait_until(lambda: os.path.exists(os.path.join(upper, "ready")), 120, "the changes to be written", 0.2)

        settled(work, args.warm_mib)
        t0 = time.time()
        moved, job = services.send_container(user, Container.objects.get(pk=row.pk), b.host.name)
        job = stack.wait_job(job)
        t_move = job.finished.timestamp() - t0  # to the job's own end, not to the next look at it
        if job.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"move: {job.error}")
        first = job.result
        steps = breakdown(job)

        mgr_b = ContainerManager(b.state_root)
        store_b = ImageStore(b.state_root)
        image = store_b.resolve(mgr_b.rootfs(moved.engine_id)["manifest"])
        layer_dir = str(store_b.layer_dir(image.diff_ids[0]))
        upper_b = mgr_b.rootfs(moved.engine_id)["upperdir"]

        def start() -> None:  # what the floor's last step is: a container made and started from the image
            info = mgr_b.create(image.digest, name="floor", command=["sleep", "100000"])
            mgr_b.start(info["id"])
            start.id = info["id"]

        scratch = work / "floor"
        runs: dict[str, Callable[[], float]] = {
            "plain": partial(floor_seconds, layer_dir, upper_b, scratch, start, False),
            "durable": partial(floor_seconds, layer_dir, upper_b, scratch, start, True),
            "relayed": partial(relayed_seconds, layer_dir, upper_b, scratch, start)}
        if args.ablation:
            runs.update({row: partial(relayed_seconds, layer_dir, upper_b, scratch, start, hashed, blob, durable)
                         for row, hashed, blob, durable in RELAYED_PARTS})
        floors: dict[str, list[float]] = {kind: [] for kind in runs}
        for _ in range(args.floors):  # each in turn; each one's median (a single one varies 0.35-0.70 s)
            for kind, run in runs.items():
                settled(work, args.warm_mib)
                floors[kind].append(run())
                mgr_b.remove(start.id, force=True)
        t_floor, t_durable, t_relayed = (statistics.median(floors[k]) for k in ("plain", "durable", "relayed"))
        parts = {row: floors[row] for row, *_ in RELAYED_PARTS} if args.ablation else {}

        settled(work, args.warm_mib)
        t1 = time.time()
        back, job = services.send_container(user, Container.objects.get(pk=moved.pk), a.host.name)
        job = stack.wait_job(job)
        t_back = job.finished.timestamp() - t1
        if job.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"second move: {job.error}")
        second = job.result
        remove = stack.wait_job(services.container_action(user, Container.objects.get(pk=back.pk), "remove",
                                                          params={"force": True}))
        if remove.state != Job.State.SUCCEEDED:
            print(f"  cleanup: remove: {remove.error}")

        mib = 1 << 20
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
              f"{os.cpu_count()} CPUs; image {args.image_mb} MiB + changes {args.changes_mb} MiB; warm {args.warm_mib} MiB")
        print(f"{'':38}{'seconds':>9}{'pack MiB':>10}{'blobs sent/kept':>17}")
        print(f"{'move a -> b (berth, one job)':38}{t_move:9.2f}{first['pack_bytes'] / mib:10.1f}"
              f"{first['blobs_sent']:>11}/{first['blobs_kept']}")
        print(f"{'floor: tar | tar + a container start':38}{t_floor:9.2f}   of {fmt(floors['plain'])}")
        print(f"{'durable floor: the same + syncfs':38}{t_durable:9.2f}   of {fmt(floors['durable'])}")
        print(f"{'relayed floor: + relay, blob, sha256':38}{t_relayed:9.2f}   of {fmt(floors['relayed'])}")
        print(f"{'move b -> a (a has the image)':38}{t_back:9.2f}{second['pack_bytes'] / mib:10.1f}"
              f"{second['blobs_sent']:>11}/{second['blobs_kept']}")
        print("first move's steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
        print(f"move / floor: {t_move / t_floor:.2f}x (goal <= 1.5x); durable floor / floor: {t_durable / t_floor:.2f}x; "
              f"move / durable floor: {t_move / t_durable:.2f}x")
        print(f"relayed floor / floor: {t_relayed / t_floor:.2f}x; move / relayed floor: {t_move / t_relayed:.2f}x")
        for row, times in parts.items():
            median = statistics.median(times)
            print(f"{row:46}{median:5.2f} s, {median / t_floor:.2f}x the floor   of {fmt(times)}")
        print(f"second move sent "
              f"{second['sent']['blobs']} bytes of image blobs, {second['sent']['upper'] / mib:.1f} MiB of changes")
    finally:
        if stack is not None:
            stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from tests.cgroup_parent import parent_removed_if_made

    with parent_removed_if_made():  # the runtime's /berth parent, if this run made it
        main()
