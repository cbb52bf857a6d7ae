"""Supervision: passes that notice exits, apply restart policies and report what changed; the
reconcile pass at worker start."""

from __future__ import annotations

import contextlib
import time

from workers.engine.monitor import changes
from workers.engine.monitor.client import MonitorError

from . import restart as _restart
from . import states as _states
from .errors import ContainerError, NoSuchContainer


class SupervisionMixin:
    """Part of ContainerManager: supervise and reconcile."""

    # ---- supervision ----------------------------------------------------------------------------

    def _supervise_one(self, cid: str) -> dict | None:
        with self._lock(cid, blocking=False) as got:
            if not got:
                return None  # a stop/remove is at work on it: next pass
            try:
                rec = self._load(cid)
            except NoSuchContainer:
                return None
            before = dict(rec)
            self._refresh(rec)
            if _auto_removable(rec):
                try:  # the monitor removes it at the exit; this is for a remover lost with a dead monitor
                    self._remove(rec, False)
                    return None
                except (ContainerError, OSError) as e:
                    rec["status_message"] = f"automatic removal failed: {e}"
            if rec["state"] in _states.STOPPED and self.net.active(cid):
                self.net.teardown(cid)  # exited by itself: its veth, rules and DNS name go; its address stays
            if rec["state"] in _states.STOPPED and _restart.should_restart(
                    rec["config"]["restart_policy"], rec.get("exit_code"), rec.get("restart_count", 0),
                    rec.get("stopped_by_user", False)):
                now = time.time()
                if not rec.get("restart_at"):
                    delay = _restart.backoff(rec.get("restart_count", 0))
                    rec["restart_at"] = now + delay
                    rec["status_message"] = (f"{rec.get('status_message') or 'exited'}; restarting in {delay:g} s "
                                             f"(policy {rec['config']['restart_policy']})")
                elif now >= rec["restart_at"]:
                    try:
                        self._start(rec, by_policy=True)
                    except ContainerError as e:
                        rec["restart_at"] = None
                        rec["status_message"] = str(e)
            if rec != before:
                self._save(rec)
            return rec

    def supervise(self) -> list[dict]:
        """One pass: notice exits, apply restart policies, and return the inspect dicts of the
        containers whose state, exit code or restart count changed since this instance's last pass.

        It costs per change, not per container: it looks only at the containers the change journal
        names (the monitor notes exits and starts, the manager every saved record; changes.py), those
        whose restart is due, and those a busy lock made it skip. Everything is looked at on the first
        pass, when the journal was rotated, and when the monitor had to be started again."""
        journal = self.__dict__.get("_journal")
        if journal is None:
            journal = self._journal = changes.JournalReader(self.root)
            self._due: dict[str, float] = {}  # restart_at of containers waiting for a policy restart
            self._retry: set[str] = set()  # skipped while busy
        noted = journal.read()
        if self._monitor_needed():
            noted = None  # a monitor restarted: it recorded what happened meanwhile; look at everything
        full = noted is None
        if full:
            ids = self._ids()
        else:
            now = time.time()
            ids = sorted(noted | self._retry | {cid for cid, at in self._due.items() if at <= now})
        self._retry = set()
        changed = []
        for cid in ids:
            try:
                rec = self._supervise_one(cid)
            except NoSuchContainer:
                rec = None
                self._forget_seen(cid)
                continue
            if rec is None:
                if (self._cdir(cid) / "container.json").exists():
                    self._retry.add(cid)  # a stop/remove is at work on it
                else:
                    self._forget_seen(cid)
                continue
            if rec.get("restart_at"):
                self._due[cid] = rec["restart_at"]
            else:
                self._due.pop(cid, None)
            key = (rec["state"], rec.get("exit_code"), rec.get("restart_count", 0), bool(rec.get("oom_killed")),
                   rec.get("started_at"), rec.get("finished_at"))
            if self._seen.get(cid) != key:
                self._seen[cid] = key
                changed.append(self._view(rec))
        if full:
            for gone in set(self._seen) - set(ids):  # one removed during this pass goes at the next
                self._forget_seen(gone)
        return changed

    def remove_if_auto(self, ref: str) -> bool:
        """Remove an auto-remove container that has exited (what the monitor runs at its exit); True if it
        did. One that is gone already, running again, or not auto-remove is left alone."""
        try:
            cid = self._resolve(ref)
            with self._lock(cid):
                rec = self._load(cid)
                self._refresh(rec)
                if not _auto_removable(rec):
                    return False
                self._remove(rec, False)
                return True
        except NoSuchContainer:
            return False  # removed by someone else first (a supervise pass, `rm`)

    def known_ids(self) -> set[str]:
        """Every container this host has: a directory listing (no record read, no runtime asked)."""
        return set(self._ids())

    def _forget_seen(self, cid: str) -> None:
        self._seen.pop(cid, None)
        self._due.pop(cid, None)

    def _monitor_needed(self) -> bool:
        """Containers this instance last saw active, and no monitor: start one (True)."""
        if not any(key[0] in _states.ACTIVE for key in self._seen.values()):
            return False
        if self.monitor.is_running():
            return False
        with contextlib.suppress(MonitorError):
            self.ensure_monitor()
        return True

    def reconcile(self) -> list[dict]:
        """The pass at worker start: running containers are left running (the monitor is started
        again if it died, and adopts them); exits that happened meanwhile are reported."""
        with contextlib.suppress(ContainerError, OSError):
            self.sweep_half_made()  # before the network reconcile: their addresses are freed with them
        states = []
        for cid in self._ids():
            with contextlib.suppress(NoSuchContainer, ValueError, ContainerError):
                rec = self._load(cid)
                states.append(rec["state"])
                if rec["state"] not in _states.ACTIVE:  # a running one's disk is in its own namespace
                    self._ensure_disk(rec)  # mounts are gone after a reboot
        if any(s in _states.ACTIVE for s in states):
            with contextlib.suppress(MonitorError):
                self.ensure_monitor()
        with contextlib.suppress(ContainerError, OSError):
            self.net.reconcile(set(self._ids()))  # networking of containers removed while we were down
        self._seen.clear()
        if self.__dict__.get("_journal") is not None:
            self._journal.start()
        return self.supervise()


def _auto_removable(rec: dict) -> bool:
    """An auto-remove container whose run is over (a created one has not run yet: Docker keeps it too)."""
    return bool(rec["config"].get("auto_remove")) and rec["state"] in _states.STOPPED
