"""Part of ContainerManager: the network verbs that take a container (connect, disconnect, port), under
the container's lock so they never interleave with its start, stop or remove."""

from __future__ import annotations

from workers.engine.net import ports as _ports

from . import states as _states


class NetworkingMixin:
    def connect_network(self, ref: str, network: str, aliases: list[str] | None = None) -> dict:
        """Join a network; a running container gets its interface at once, a stopped one at its next start."""
        cid = self._resolve(ref)
        with self._lock(cid):
            self._load(cid)
            return self.net.connect(cid, network, aliases)

    def disconnect_network(self, ref: str, network: str) -> dict:
        cid = self._resolve(ref)
        with self._lock(cid):
            self._load(cid)
            return self.net.disconnect(cid, network)

    def remove_network(self, ref: str, force: bool = False) -> dict:
        """Remove a network; with force its containers are disconnected first (each under its lock)."""
        rec = self.net.store.get(ref)
        if force:
            for cid in self.net.store.users(rec):
                if self._cdir(cid).exists():
                    self.disconnect_network(cid, rec["id"])
        return self.net.remove(rec["id"], force=force)

    def port(self, ref: str) -> list[str]:
        """Published ports as `docker port` prints them: '80/tcp -> 127.0.0.1:32768'."""
        rec = self._current(self._resolve(ref))
        maps = self.net.view(rec["id"])["ports"]
        return [_ports.describe(m) for m in maps] if rec["state"] in _states.ACTIVE or maps else []
