"""A container's record (container.json) and lock, the runtime it runs under, and its live state
read back from the runtime and the monitor's exit record."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from workers.engine import flocks
from workers.engine.monitor import changes
from workers.engine.monitor.client import MonitorError
from workers.engine.monitor.jsonlog import rfc3339_nano
from workers.engine.monitor.layout import write_json_atomic
from workers.engine.runtime import errors as rterr
from workers.engine.storage import quota

from . import oci, proc_netns, runtime_probe
from . import states as _states
from .bundle import cgroup_path
from .config import ID_RE, parse_mount
from .errors import ContainerError, InvalidConfig, NoSuchContainer


class RecordsMixin:
    """Part of ContainerManager: records, locks, runtimes, refreshing live state."""

    # ---- records and locks ----------------------------------------------------------

    def _cdir(self, cid: str) -> Path:
        return self.containers_dir / cid

    def _ids(self) -> list[str]:
        return sorted(p.parent.name for p in self.containers_dir.glob("*/container.json"))

    def _load(self, cid: str) -> dict:
        try:
            return json.loads((self._cdir(cid) / "container.json").read_text())
        except FileNotFoundError:
            raise NoSuchContainer(f"no such container '{cid[:12]}'") from None

    def _all_names(self) -> Iterator[tuple[str, str]]:
        """(id, name) of every container, from the records (what the name index is built from)."""
        for cid in self._ids():
            with contextlib.suppress(NoSuchContainer, ValueError):
                yield cid, self._load(cid).get("name") or ""

    def _save(self, rec: dict, durable: bool = True) -> None:
        """durable=False: no fsync, for a change of running state only (after a power cut no container runs,
        whatever its record last said, and reconciling says so)."""
        write_json_atomic(self._cdir(rec["id"]) / "container.json", rec, durable=durable)
        changes.note(self.root, rec["id"])  # supervision reads changes, not every record (changes.py)

    def _resolve(self, ref: str) -> str:
        """id, then name, then unique id prefix (as docker)."""
        if not isinstance(ref, str) or not ref or "/" in ref or ref in (".", ".."):
            raise NoSuchContainer(f"no such container '{ref}'")
        if (self._cdir(ref) / "container.json").exists():
            return ref
        if self.names.complete():
            owner = self.names.owner(ref)
            if owner is not None:
                return owner
        else:  # a state root whose index is made at its next create
            for cid, name in self._all_names():
                if name == ref:
                    return cid
        if ID_RE.match(ref):  # a whole id is no other id's prefix: no need to list every container
            raise NoSuchContainer(f"no such container '{ref}'")
        ids = self._ids()
        matches = [cid for cid in ids if cid.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NoSuchContainer(f"container id prefix '{ref}' is ambiguous: {len(matches)} containers match")
        raise NoSuchContainer(f"no such container '{ref}'")

    @contextlib.contextmanager
    def _lock(self, cid: str | None, blocking: bool = True) -> Iterator[bool]:
        """flock on <container dir>/.lock (cid None: the host-wide names lock). A container removed
        meanwhile raises NoSuchContainer: remove() renames the dir away before deleting it."""
        path = self.locks_dir / "names.lock" if cid is None else self._cdir(cid) / ".lock"
        with contextlib.ExitStack() as stack:
            try:
                got = stack.enter_context(flocks.held(path, blocking=blocking))
            except FileNotFoundError:
                raise NoSuchContainer(f"no such container '{cid[:12] if cid else ''}'") from None
            yield got

    def _monitor_env(self) -> dict[str, str]:
        return {"BERTH_LOG_REDIS_URL": self.log_redis_url} if self.log_redis_url else {}

    def ensure_monitor(self) -> None:
        """The host's monitor running (started unless it answers), with its environment: before a start, at a
        reconcile, and ahead of a start known to come (a move's receive has it spawned while its pack streams in:
        a fresh host's first start spent 0.13 s on it after, bench/move.py)."""
        self.monitor.ensure_running(env=self._monitor_env())

    # ---- the runtime a container runs under ----------------------------------------------

    def runtime(self, name: str = "berth") -> oci.OCIRuntime:
        if name not in self._runtimes:
            self._runtimes[name] = oci.get(name, self.root)
        return self._runtimes[name]

    def _rt(self, rec: dict) -> oci.OCIRuntime:
        return self.runtime(rec.get("runtime") or "berth")  # records from before the seam ran under berth

    def _check_runtime(self, name: str, cfg: dict) -> None:
        if name not in oci.RUNTIMES:
            raise InvalidConfig("runtime", f"unknown runtime {name!r} (known: {', '.join(oci.RUNTIMES)})")
        why = runtime_probe.problem(name)
        if why is not None:
            raise InvalidConfig("runtime", f"runtime {name} does not work on this host: {why}")
        if name != "berth" and cfg.get("bind_roots") is not None and any(
                parse_mount(m)["type"] == "bind" for m in cfg["mounts"]):
            # only Berth's runtime opens a confined bind source again without following links at start
            raise InvalidConfig("runtime", f"bind mounts of host paths need the berth runtime, not {name}")

    # ---- live state -------------------------------------------------------------------

    def _runtime_status(self, rec: dict) -> tuple[str | None, int]:
        try:
            st = self._rt(rec).state(rec["id"])
        except rterr.ContainerNotFound:
            return None, 0
        return st["status"], st.get("pid") or 0

    def _exit_record(self, cid: str) -> dict | None:
        try:
            return json.loads((self._cdir(cid) / "exit.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _refresh(self, rec: dict) -> None:
        """Bring rec's state up to date with the runtime and the monitor's exit record."""
        if rec["state"] not in _states.ACTIVE:
            return
        cid = rec["id"]
        status, pid = self._runtime_status(rec)
        if status in _states.ACTIVE:
            rec["state"], rec["pid"] = status, pid
            return
        ex = self._exit_record(cid)
        if ex is None:
            try:
                mon = self.monitor.status(cid)
            except MonitorError:
                mon = None
            if mon is not None and mon.get("status") in ("creating", "created", "running"):
                return  # gone a moment ago: the monitor has not written its exit record yet
            ex = self._exit_record(cid)  # written between our two looks
        if ex is None:
            rec.update(state=_states.DEAD, pid=None, finished_at=rec.get("finished_at") or rfc3339_nano(),
                       status_message="the container's process is gone and no exit status was recorded "
                                      "(the monitor is not running)")
            self._release_runtime(rec)
            return
        rec.update(state=_states.EXITED, pid=None, exit_code=ex.get("exit_code"), oom_killed=bool(ex.get("oom_killed")),
                   finished_at=ex.get("finished_at"))
        if ex.get("reason"):
            rec["status_message"] = ex["reason"]
        elif rec["oom_killed"]:
            rec["status_message"] = "OOM killed"
        else:
            rec["status_message"] = f"exited with code {rec['exit_code']}"
        self._release_runtime(rec)

    def _release_runtime(self, rec: dict) -> None:
        """After an exit: the runtime's state, cgroup and rootfs mount go, the monitor forgets it (exit.json
        stays)."""
        cid = rec["id"]
        with contextlib.suppress(rterr.ContainerNotFound, rterr.InvalidState):
            self._rt(rec).delete(cid, force=True, bundle=self._cdir(cid) / "bundle")
        with contextlib.suppress(MonitorError):
            self.monitor.forget(cid)

    def _view(self, rec: dict) -> dict:
        cid = rec["id"]
        cfg = rec["config"]
        return {
            "id": cid, "name": rec["name"], "image": rec["image"], "image_id": rec["image_id"],
            "state": rec["state"], "pid": rec.get("pid") if rec["state"] in _states.ACTIVE else None,
            "exit_code": rec.get("exit_code"), "oom_killed": bool(rec.get("oom_killed")),
            "created": rec.get("created"), "started_at": rec.get("started_at"), "finished_at": rec.get("finished_at"),
            "restart_policy": cfg["restart_policy"], "restart_count": rec.get("restart_count", 0),
            "status_message": rec.get("status_message", ""), "config": dict(cfg, image=rec["image"]),
            "labels": dict(cfg["labels"]), "bundle": str(self._cdir(cid) / "bundle"),
            "runtime": rec.get("runtime") or "berth",
            "log_path": str(self._log_path(cid)),
            "network": self.net.view(cid),
        }

    def _rw_dir(self, cid: str) -> Path:
        """Where a container with a disk limit keeps upper/ and work/: a size-limited mount."""
        return self._cdir(cid) / "rw"

    def _ensure_disk(self, rec: dict) -> None:
        """A disk-limited container's mount is on the host (after a reboot, or while it runs: see _detach_disk)
        before anything reads upper/."""
        if not rec["config"].get("disk"):
            return
        try:
            quota.ensure_mounted(self._rw_dir(rec["id"]))
        except quota.QuotaError as e:
            raise ContainerError(f"container {rec['name']}: {e}") from None

    def _netns_fd(self, cid: str) -> int | None:
        """An fd of the running container's network namespace, through its init (proc_netns.py: checked to be the
        container's process); None when it does not run."""
        try:
            rec = self._load(cid)
        except NoSuchContainer:
            return None
        if rec["state"] not in _states.ACTIVE or not rec.get("pid"):
            return None
        return proc_netns.open_netns(int(rec["pid"]), cgroup_path(cid))

    def _detach_disk(self, rec: dict) -> None:
        """Once Berth's runtime has started the container, its disk leaves the host's mount table: the container's
        own mount namespace holds it, and every mount on the host slows each later start (storage/quota.py).
        runc and crun run on an overlay the host mounted, over this disk: theirs stays."""
        if rec["config"].get("disk") and (rec.get("runtime") or "berth") == "berth":
            quota.detach(self._rw_dir(rec["id"]))

    @contextlib.contextmanager
    def _disk_read(self, rec: dict) -> Iterator[None]:
        """upper/ readable on the host for the block (a running container's /etc/passwd), detached again after."""
        self._ensure_disk(rec)
        try:
            yield
        finally:
            if rec["state"] in _states.ACTIVE:
                self._detach_disk(rec)

    def _log_path(self, cid: str) -> Path:
        return self._cdir(cid) / "logs" / "container.log"

    def _current(self, cid: str) -> dict:
        """The record refreshed; saved if nobody else holds the container's lock."""
        with self._lock(cid, blocking=False) as got:
            rec = self._load(cid)
            before = dict(rec)
            self._refresh(rec)
            if got and rec != before:
                self._save(rec)
        return rec
