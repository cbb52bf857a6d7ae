"""Supervision: passes that notice exits, apply restart policies and report what changed; the
reconcile pass at worker start."""

from __future__ import annotations

import contextlib
import time

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
        containers whose state, exit code or restart count changed since this instance's last pass."""
        changed = []
        ids = self._ids()
        for cid in ids:
            try:
                rec = self._supervise_one(cid)
            except NoSuchContainer:
                continue  # removed meanwhile
            if rec is None:
                continue
            key = (rec["state"], rec.get("exit_code"), rec.get("restart_count", 0), bool(rec.get("oom_killed")),
                   rec.get("started_at"), rec.get("finished_at"))
            if self._seen.get(cid) != key:
                self._seen[cid] = key
                changed.append(self._view(rec))
        for gone in set(self._seen) - set(ids):  # one removed during this pass goes at the next
            self._seen.pop(gone, None)
        return changed

    def reconcile(self) -> list[dict]:
        """The pass at worker start: running containers are left running (the monitor is started
        again if it died, and adopts them); exits that happened meanwhile are reported."""
        states = []
        for cid in self._ids():
            with contextlib.suppress(NoSuchContainer, ValueError, ContainerError):
                rec = self._load(cid)
                states.append(rec["state"])
                self._ensure_disk(rec)  # mounts are gone after a reboot
        if any(s in _states.ACTIVE for s in states):
            with contextlib.suppress(MonitorError):
                self.monitor.ensure_running(env=self._monitor_env())
        with contextlib.suppress(ContainerError, OSError):
            self.net.reconcile(set(self._ids()))  # networking of containers removed while we were down
        self._seen.clear()
        return self.supervise()
