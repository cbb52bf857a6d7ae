"""ContainerManager: the containers of one host, from an image to a removed container.

State per container under <state_root>/containers/<id>/: container.json (our record), image.json,
upper/ and work/ (ImageStore.prepare_rootfs), bundle/config.json, logs/ and exit.json (written by
the monitor). The runtime keeps its state in <state_root>/runtime, the monitor in
<state_root>/monitor; a container runs as a child of the monitor, so it outlives the caller.

Every operation that changes a container holds its fcntl lock (<state_root>/locks/<id>.lock), so
a stop and a supervise pass never act on the same container at once; supervise skips a busy one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal as _signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from workers.engine.images.errors import ImageError, ImageNotFound, InvalidReference
from workers.engine.images.store import ImageStore
from workers.engine.monitor import changes
from workers.engine.monitor.client import MonitorClient, MonitorError
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.layout import write_json_atomic
from workers.engine.net import NetworkManager
from workers.engine.runtime import errors as rterr
from workers.engine.runtime.api import parse_signal
from workers.engine.storage import quota

from . import logs as _logs
from . import oci
from . import restart as _restart
from . import states as _states
from .bundle import build_spec
from .config import DEFAULT_PIDS_LIMIT, ID_RE, NAME_RE
from .errors import (
    ContainerError,
    InvalidConfig,
    InvalidState,
    NameTaken,
    NoSuchContainer,
    NoSuchImage,
    WaitTimeout,
)
from .exec_sessions import ExecSessionsMixin
from .host_checks import check_on_host
from .live import LiveMixin
from .name_index import NameIndex
from .names import generate_name
from .networking import NetworkingMixin
from .records import RecordsMixin
from .spec import ContainerSpec
from .supervision import SupervisionMixin

STOP_SIGNALS = {int(_signal.SIGKILL), int(_signal.SIGTERM), int(_signal.SIGINT), int(_signal.SIGQUIT)}
EXIT_WAIT = 30.0  # how long to wait for the monitor's exit record after a SIGKILL


class ContainerManager(RecordsMixin, SupervisionMixin, NetworkingMixin, ExecSessionsMixin, LiveMixin):
    """The verbs; records and live state are in records.py, supervision in supervision.py."""

    def __init__(self, state_root: str | os.PathLike[str], *, log_redis_url: str | None = None,
                 log_max_size: int = 10 * 1024 * 1024, log_max_files: int = 3,
                 default_pids_limit: int | None = DEFAULT_PIDS_LIMIT, default_disk: int | None = None,
                 default_network: str | None = None):
        self.root = Path(state_root).resolve()
        # networking (workers/engine/net): a spec without networks joins `default_network` ("bridge" as
        # Docker's, set by the CLI and the worker); None keeps such a container in a namespace with only lo
        self.default_network = default_network
        self.net = NetworkManager(self.root, default_network=default_network or "bridge", ns_fd=self._netns_fd)
        # what a create without pids_limit / disk gets (None: no limit)
        self.default_pids_limit, self.default_disk = default_pids_limit, default_disk
        self.log_max_size, self.log_max_files = log_max_size, log_max_files
        self.containers_dir = self.root / "containers"
        self.locks_dir = self.root / "locks"
        self.log_redis_url = log_redis_url
        self._runtimes: dict[str, oci.OCIRuntime] = {}  # by name: every runtime verb goes through the seam
        self.monitor = MonitorClient(self.root)
        self.names = NameIndex(self.root, self.containers_dir)
        self._seen: dict[str, tuple] = {}
        for d in (self.containers_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ---- create ---------------------------------------------------------------------------

    def create(self, image_ref: str, spec: ContainerSpec | Mapping[str, Any] | None = None, *, id: str | None = None,
               name: str = "", bind_roots: list[str] | None = None, runtime: str = "berth", **fields: Any) -> dict:
        """Make a container from an image (not started). Returns its inspect dict.

        What it is asked to be is a ContainerSpec (or its JSON, or its fields as keyword arguments).
        A spec without disk gets the manager's default_disk, and without pids_limit its default_pids_limit.
        `bind_roots` (for a requester who is not the host's admin): the only host dirs bind sources may lie
        under, reached without symlinks (bundle.confined_bind_source); None = any host path.
        `runtime`: berth, runc or crun, refused (field `runtime`) unless it works on this host."""
        if not isinstance(spec, ContainerSpec):
            spec = ContainerSpec.from_json({**(spec or {}), **fields})
        elif fields:
            spec = spec.replace(**fields)
        if id is not None and not ID_RE.match(str(id)):
            raise InvalidConfig("id", f"invalid container id {id!r}: expected 64 lowercase hex digits")
        if name and not NAME_RE.match(name):
            raise InvalidConfig("name", f"invalid container name {name!r}: use letters, digits, '_', '.', '-' "
                                        "(starting with a letter or digit)")
        check_on_host(spec)
        cfg = spec.to_json()
        cfg["disk"] = spec.disk if spec.disk is not None else self.default_disk
        cfg["pids_limit"] = spec.pids_limit if spec.pids_limit is not None else self.default_pids_limit
        if bind_roots is not None:
            cfg["bind_roots"] = [str(r) for r in bind_roots]
        self._check_runtime(runtime, cfg)
        cid = id or secrets.token_hex(32)
        store = ImageStore(self.root)
        with self._lock(None):
            self.names.build(self._all_names)  # once per state root made before the index
            owner = self.names.owner(name) if name else None
            if owner is not None:
                raise NameTaken(f"name '{name}' is already in use by container {owner[:12]}")
            name = name or generate_name(self.names)
            cdir = self._cdir(cid)
            if cdir.exists():
                raise InvalidConfig("id", f"a container with id {cid[:12]} already exists")
            try:
                image = store.resolve(image_ref)
            except ImageNotFound:
                raise NoSuchImage(f"no such image '{image_ref}' on this host") from None
            except InvalidReference as e:
                raise InvalidConfig("image", str(e)) from None
            rw = self._rw_dir(cid) if cfg["disk"] else None
            networked = bool(cfg["networks"] or cfg["ports"] or self.default_network)
            try:
                if networked:
                    self.net.prepare(cid, name, cfg, resolve=self._resolve)
                if rw is not None:
                    cdir.mkdir(parents=True)
                    try:
                        quota.make(rw, cfg["disk"], templates=quota.templates_dir(self.root))
                    except quota.QuotaError as e:
                        raise ContainerError(f"cannot give the container its disk limit: {e}") from None
                rootfs = store.prepare_rootfs(image.digest, cdir, rw_dir=rw)
                spec = build_spec(cid=cid, cfg=cfg, image_ref=image_ref, image_cfg=image.config.get("config") or {},
                                  rootfs=rootfs, state_root=self.root)
                if networked:
                    self.net.oci(spec, cid)
                bundle = cdir / "bundle"
                (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
                write_json_atomic(bundle / "config.json", spec)
                (cdir / "logs").mkdir(exist_ok=True)
                rec = {"id": cid, "name": name, "image": image_ref, "image_id": image.id, "created": rfc3339_nano(),
                       "state": _states.CREATED, "pid": None, "exit_code": None, "oom_killed": False,
                       "started_at": None, "finished_at": None, "restart_count": 0, "status_message": "",
                       "stopped_by_user": False, "restart_at": None, "config": cfg, "runtime": runtime}
                self._save(rec)
                self.names.add(name, cid)
            except BaseException:
                self._undo_create(cid)
                raise
        return self._view(rec)

    # ---- start / stop ---------------------------------------------------------------------

    def _start(self, rec: dict, *, by_policy: bool = False) -> None:
        cid = rec["id"]
        if rec["state"] in _states.ACTIVE:
            raise InvalidState(f"container {rec['name']} is already {rec['state']}")
        self._release_runtime(rec)  # a previous run's runtime state, if any is left
        self._ensure_disk(rec)
        try:
            self.net.setup(cid)
        except ContainerError as e:
            rec["status_message"] = f"start failed: {e}"
            self._save(rec)
            raise
        try:
            self.ensure_monitor()
            info = self.monitor.start_container(cid, self._cdir(cid) / "bundle", log_path=self._log_path(cid),
                                                runtime_cmd=self._rt(rec).command(),
                                                tty=rec["config"]["tty"], log_max_size=self.log_max_size,
                                                log_max_files=self.log_max_files,
                                                log_redis_url=self.log_redis_url,
                                                auto_remove=bool(rec["config"].get("auto_remove")))
        except MonitorError as e:
            self._release_runtime(rec)
            self.net.teardown(cid)
            rec["status_message"] = f"start failed: {_short(str(e))}"
            self._save(rec)
            raise ContainerError(f"cannot start container {rec['name']}: {_short(str(e))}") from None
        rec.update(state=_states.RUNNING, pid=info.get("pid"), exit_code=None, oom_killed=False,
                   started_at=info.get("started_at") or rfc3339_nano(), finished_at=None,
                   stopped_by_user=False, restart_at=None)
        if by_policy:
            rec["restart_count"] = rec.get("restart_count", 0) + 1
            rec["status_message"] = _restart.describe(rec["config"]["restart_policy"], rec["restart_count"])
        else:
            rec["restart_count"] = 0
            rec["status_message"] = ""
        self._refresh(rec)  # a container that exited at once
        self._save(rec, durable=False)  # one write, no fsync: running state (see _save)
        self._detach_disk(rec)
        self.net.started(cid)  # its namespace's mount off the host's table too

    def start(self, ref: str) -> dict:
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            self._start(rec)
            return self._view(rec)

    def _wait_exit(self, rec: dict, timeout: float) -> bool:
        """Until rec has left running/paused (True) or `timeout` passed (False). The monitor's wait answers as it
        reaps the container (polling alone saw a quick exit up to 35 ms late: a move's stop); then polled."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(MonitorError, TimeoutError):
            self.monitor.wait(rec["id"], timeout=timeout)
        delay = 0.005
        while True:
            self._refresh(rec)
            if rec["state"] not in _states.ACTIVE:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _stop(self, rec: dict, timeout: float, network: bool = True) -> None:
        cid = rec["id"]
        rec["stopped_by_user"] = True
        rec["restart_at"] = None
        self._save(rec)
        if rec["state"] not in _states.ACTIVE:
            return
        rt = self._rt(rec)
        with contextlib.suppress(rterr.InvalidState, rterr.ContainerNotFound):
            rt.kill(cid, _signal.SIGTERM)
            if rec["state"] == _states.PAUSED:
                rt.resume(cid)  # a frozen process cannot act on SIGTERM
        if not self._wait_exit(rec, max(0.0, float(timeout))):
            with contextlib.suppress(rterr.InvalidState, rterr.ContainerNotFound):
                rt.kill(cid, _signal.SIGKILL, all=True)
            self._wait_exit(rec, EXIT_WAIT)
        if network and rec["state"] not in _states.ACTIVE:
            self.net.teardown(cid)  # veth, rules and namespace go with the process; addresses stay
        self._save(rec)

    def stop(self, ref: str, timeout: float = 10, network: bool = True) -> dict:
        """SIGTERM, then SIGKILL after `timeout` seconds. Stopping a stopped container is a no-op.
        `network=False`: its networking (netavark: a fifth of a second) is left to teardown_network, which a move
        runs while it packs; what nobody tears down goes at the next supervision pass, as for an exit."""
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            self._stop(rec, timeout, network)
            return self._view(rec)

    def teardown_network(self, ref: str) -> None:
        """The networking of a stopped container undone (see stop); nothing if it runs or has none."""
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            if rec["state"] not in _states.ACTIVE and self.net.active(cid):
                self.net.teardown(cid)

    def kill(self, ref: str, signal: str | int = "SIGKILL") -> dict:
        cid = self._resolve(ref)
        try:
            signum = parse_signal(signal)
        except (rterr.InvalidState, ValueError):
            raise InvalidConfig("signal", f"unknown signal {signal!r}") from None
        if not 0 < signum < 65:
            raise InvalidConfig("signal", f"unknown signal {signal!r}")
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            if rec["state"] not in _states.ACTIVE:
                raise InvalidState(f"container {rec['name']} is not running")
            if signum in STOP_SIGNALS:
                rec["stopped_by_user"] = True
                self._save(rec)
            try:
                self._rt(rec).kill(cid, signum, all=signum == _signal.SIGKILL)
            except (rterr.InvalidState, rterr.ContainerNotFound):
                pass  # ended meanwhile
            if signum == _signal.SIGKILL:
                self._wait_exit(rec, EXIT_WAIT)
            else:
                self._refresh(rec)
            if rec["state"] not in _states.ACTIVE:
                self.net.teardown(cid)  # as after a stop: not left for the next supervise pass
            self._save(rec)
            return self._view(rec)

    def restart(self, ref: str, timeout: float = 10) -> dict:
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            self._stop(rec, timeout)
            self._start(rec)
            return self._view(rec)

    def pause(self, ref: str) -> dict:
        return self._freeze(ref, _states.RUNNING, "pause", "pause")

    def unpause(self, ref: str) -> dict:
        return self._freeze(ref, _states.PAUSED, "resume", "unpause")

    def _freeze(self, ref: str, need: str, action: str, verb: str) -> dict:
        """pause/unpause: the runtime's `action` on a container in state `need`, then its new state."""
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            if rec["state"] != need:
                raise InvalidState(f"container {rec['name']} is {rec['state']}, not {need}")
            try:
                getattr(self._rt(rec), action)(cid)
            except rterr.RuntimeError_ as e:
                raise ContainerError(f"cannot {verb} container {rec['name']}: {e}") from None
            self._refresh(rec)
            self._save(rec)
            return self._view(rec)

    def exec(self, ref: str, args: list[str], *, env: list[str] | None = None, cwd: str | None = None,
             tty: bool = False, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
        """Run `args` in a running container, in the foreground, through its runtime; the exit code."""
        cid = self._resolve(ref)
        rec = self._current(cid)
        if not args:
            raise InvalidConfig("command", "exec needs a command")
        if rec["state"] != "running":
            raise InvalidState(f"container {rec['name']} is {rec['state']}, not running")
        try:
            return self._rt(rec).exec(cid, [str(a) for a in args], env=env, cwd=cwd, tty=tty, stdin=stdin,
                                      stdout=stdout, stderr=stderr)
        except rterr.InvalidState as e:
            raise InvalidState(f"container {rec['name']}: {e}") from None
        except rterr.RuntimeError_ as e:
            raise ContainerError(f"cannot exec in container {rec['name']}: {e}") from None

    # ---- remove -----------------------------------------------------------------------------

    def _undo_create(self, cid: str) -> None:
        """What a create made before its record: address, image use, disk mount, directory (a failed create,
        or one whose process was killed: see sweep_half_made)."""
        cdir = self._cdir(cid)
        with contextlib.suppress(Exception):
            self.net.release(cid)
        with contextlib.suppress(Exception):
            ImageStore(self.root).release_rootfs(cdir)
        with contextlib.suppress(Exception):
            quota.release_if_any(self._rw_dir(cid))
        shutil.rmtree(cdir, ignore_errors=True)

    def sweep_half_made(self) -> list[str]:
        """Directories of creates that never wrote their record (the worker was killed mid-create) undone, under
        the lock every create holds, so a create in progress is never taken for one; their ids."""
        gone = []
        with self._lock(None):
            if not self.containers_dir.is_dir():
                return gone
            for d in self.containers_dir.iterdir():
                if ID_RE.match(d.name) and not (d / "container.json").exists():
                    self._undo_create(d.name)
                    gone.append(d.name)
        return gone

    def remove(self, ref: str, force: bool = False) -> None:
        """Remove a container; a running one only with force (killed first). Leaves no process,
        cgroup, mount or directory behind; named volumes stay."""
        cid = self._resolve(ref)
        with self._lock(cid):
            rec = self._load(cid)
            self._refresh(rec)
            self._remove(rec, force)

    def _remove(self, rec: dict, force: bool) -> None:
        """remove() with the container's lock held (supervision removes auto-remove containers under it)."""
        cid = rec["id"]
        if rec["state"] in _states.ACTIVE:
            if not force:
                raise InvalidState(f"container {rec['name']} is {rec['state']}: stop it first or remove it "
                                   "with force")
            rec["stopped_by_user"] = True
            self._save(rec)
            with contextlib.suppress(rterr.ContainerNotFound, rterr.InvalidState):
                self._rt(rec).delete(cid, force=True, bundle=self._cdir(cid) / "bundle")
            # the monitor writes exit.json into the container dir: wait for it before removing the dir
            self._wait_exit(rec, EXIT_WAIT)
        self._release_runtime(rec)
        self.net.release(cid)
        with contextlib.suppress(ImageError, OSError):
            ImageStore(self.root).release_rootfs(self._cdir(cid))
        rw = self._rw_dir(cid)
        if rw.exists() or quota.image_of(rw).exists():
            quota.release(rw)  # no mount, loop device or image file stays
        # renamed first: from here on nobody can open the lock or find the record
        tomb = self.containers_dir / f".removing-{cid}"
        shutil.rmtree(tomb, ignore_errors=True)  # left by an interrupted remove
        os.rename(self._cdir(cid), tomb)
        self.names.discard(rec["name"], cid)
        shutil.rmtree(tomb, ignore_errors=True)
        self._seen.pop(cid, None)
        changes.note(self.root, cid)

    # ---- queries ------------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict:
        return self._view(self._current(self._resolve(ref)))

    def list(self, all: bool = True) -> list[dict]:
        out = []
        for cid in self._ids():
            try:
                view = self._view(self._current(cid))
            except NoSuchContainer:
                continue  # removed meanwhile
            if all or view["state"] in _states.ACTIVE:
                out.append(view)
        return sorted(out, key=lambda v: v.get("created") or "", reverse=True)

    def log_files(self, ref: str) -> list[Path]:
        return _logs.log_files(self._log_path(self._resolve(ref)))

    def logs(self, ref: str, *, tail: int | None = None, since: float | None = None, timestamps: bool = False,
             follow: bool = False, stdout: bool = True, stderr: bool = True) -> Iterator[dict]:
        """json-file records {"stream", "time", "log"}, oldest first. `timestamps` is for callers that
        print lines; every record carries its time. With `follow`, ends when the container stops."""
        cid = self._resolve(ref)
        if tail is not None and int(tail) < 0:
            tail = None

        def running() -> bool:
            try:
                return self._current(cid)["state"] in _states.ACTIVE
            except NoSuchContainer:
                return False

        return _logs.read_logs(self._log_path(cid), tail=None if tail is None else int(tail), since=since,
                               follow=follow, stdout=stdout, stderr=stderr, running=running)

    def wait(self, ref: str, timeout: float | None = None) -> dict:
        """Block until the container is not running (a created one: until it has run and exited)."""
        cid = self._resolve(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while True:
            rec = self._current(cid)
            if rec["state"] in _states.STOPPED:
                return self._view(rec)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"container {rec['name']} is still {rec['state']} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # ---- filesystem -----------------------------------------------------------------------------

    def export(self, ref: str, dest: str | os.PathLike[str] | BinaryIO, progress=None) -> int:
        cid = self._resolve(ref)
        self._ensure_disk(self._load(cid))
        return ImageStore(self.root).export_container(self._cdir(cid), dest, progress=progress)

    def rootfs(self, ref: str) -> dict:
        """The container's image manifest digest and upper dir (what a move sends; see move_pack.py)."""
        cid = self._resolve(ref)
        self._ensure_disk(self._load(cid))
        info = ImageStore(self.root)._container(self._cdir(cid))
        return {"manifest": info["manifest"], "upperdir": info["upperdir"]}

    def commit(self, ref: str, new_ref: str, *, author: str = "", message: str = "",
               changes: list[str] | None = None, replace: bool = True) -> str:
        """The container's changes as image `new_ref`; `replace=False` refuses an existing one (RefTaken)."""
        cid = self._resolve(ref)
        self._ensure_disk(self._load(cid))
        try:
            return ImageStore(self.root).commit(self._cdir(cid), new_ref, author=author, message=message,
                                                changes=list(changes or []), replace=replace)
        except InvalidReference as e:
            raise InvalidConfig("ref", str(e)) from None


_RUNTIME_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _short(text: str) -> str:
    """A runtime failure as one readable line: the runtime's own msg="..." when it gave one."""
    m = _RUNTIME_MSG.search(text)
    if m:
        try:
            text = json.loads(f'"{m.group(1)}"')
        except ValueError:
            text = m.group(1)
    text = re.sub(r"^(create|start) failed \(exit \d+\): ", "", text)
    return " ".join(text.split())[:500]
