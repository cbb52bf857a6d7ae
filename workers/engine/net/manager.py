"""NetworkManager: the networks of one host and every container's attachment to them.

The container manager calls `prepare` at create (addresses, ports, /etc files), `oci` to point config.json at
them, `setup` before a start, `teardown` after a stop and `release` at remove; `reconcile` at worker start
frees what belongs to containers that are gone. A container's state is <state_root>/net/containers/<id>/
(net.json, hosts, hostname, resolv.conf); its namespace is bind-mounted at <state_root>/net/ns/<id> from
`setup` until the container has started (`started`: its processes hold it from then on, and it is mounted there
again only while a connect, a disconnect or a container joining it needs the path).

Modes as Docker's: a list of networks (default: the `bridge` network), `none` (only lo), `host` (the
host's namespace), `container:<ref>` (another container's namespace and /etc files)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from . import antispoof, bridge_room, files, guard, netavark, netns, ports, routes, sweep
from .errors import InvalidConfig, InvalidState, NetworkError, NoSuchNetwork
from .store import DEFAULT_NETWORK, NetworkStore

MODES = ("none", "host")


class NetworkManager:
    def __init__(self, state_root: str | os.PathLike[str], *, default_network: str = DEFAULT_NETWORK,
                 ns_fd: Callable[[str], int | None] | None = None):
        """`ns_fd(cid)`: an fd of a running container's network namespace, opened through its process (the
        container manager's; containers/proc_netns.py), None when it does not run."""
        self.root = Path(state_root)
        self.ns_fd = ns_fd
        self.store = NetworkStore(self.root)
        self.cdir = self.store.base / "containers"
        self.nsdir = self.store.base / "ns"
        self.run_dir = self.store.base / "run"  # netavark's --config: aardvark-dns state
        self.default_network = default_network
        self.cdir.mkdir(parents=True, exist_ok=True)

    # ---- networks ----------------------------------------------------------------------------

    def create(self, name: str, **kw) -> dict:
        return self.view_network(self.store.create(name, **kw))

    def list(self) -> list[dict]:
        return [self.view_network(r) for r in self.store.all()]

    def inspect(self, ref: str) -> dict:
        return self.view_network(self.store.get(ref))

    def remove(self, ref: str, force: bool = False) -> dict:
        with self.store.locked():
            rec = self.store.get(ref)
            if force:
                for cid in self.store.users(rec):
                    with contextlib.suppress(NoSuchNetwork, InvalidConfig):
                        self.disconnect(cid, rec["name"])
            view = self.view_network(self.store.delete(rec["id"]))
            self.sweep([rec])
            return view

    def prune(self) -> list[str]:
        """Remove every unused network but the default one; their names."""
        gone = []
        with self.store.locked():
            for rec in self.store.all():
                if rec["name"] != DEFAULT_NETWORK and not rec["allocations"]:
                    self.store.delete(rec["id"])
                    self.sweep([rec])
                    gone.append(rec["name"])
        return gone

    def sweep(self, nets: list[dict] | None = None) -> list[str]:
        """Networks (default: all of this host's) left on the machine with no container on their bridge, torn
        down completely by netavark (sweep.py); their names. At network remove, at reconcile, at dismantle."""
        done = []
        with self.store.locked():
            nets = self.store.all() if nets is None else nets
            rules = sweep.firewall_text() if nets else ""
            for net in nets:
                if sweep.left_on_host(net, rules) and sweep.tear_down(net, self.run_dir, self.nsdir / ".stand-in"):
                    done.append(net["name"])
        return done

    def dismantle(self) -> None:
        """Everything this host's networking holds on the machine undone, before its state root is removed
        (a test's root, a host taken out of service): every container's networking released, then whatever
        of each network is left swept. The containers' processes should be gone first."""
        with self.store.locked():
            for d in list(self.cdir.iterdir()):
                self.release(d.name)
            self.sweep()

    def view_network(self, rec: dict) -> dict:
        containers = {}
        for ip, cid in rec["allocations"].items():
            st = self._load(cid)
            containers[cid] = {"name": st.get("name", "") if st else "", "ip": ip,
                               "mac": ((st or {}).get("attachments", {}).get(rec["name"]) or {}).get("mac")}
        return {k: rec[k] for k in ("id", "name", "driver", "subnet", "gateway", "internal", "dns", "labels",
                                    "created", "bridge")} | {"containers": containers}

    # ---- per-container state ----------------------------------------------------------------

    def _dir(self, cid: str) -> Path:
        return self.cdir / cid

    def _load(self, cid: str) -> dict | None:
        try:
            return json.loads((self._dir(cid) / "net.json").read_text())
        except (OSError, ValueError):
            return None

    def _save(self, st: dict) -> None:
        d = self._dir(st["id"])
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "net.json.tmp"
        tmp.write_text(json.dumps(st, indent=1))
        os.replace(tmp, d / "net.json")

    def _ns(self, cid: str) -> Path:
        return self.nsdir / cid

    def _others_ports(self, cid: str) -> list[dict]:
        out = []
        for d in self.cdir.iterdir():
            if d.name != cid and (st := self._load(d.name)):
                out += [dict(p, container=d.name) for p in st.get("ports", [])]
        return out

    # ---- create / oci ----------------------------------------------------------------------------

    def prepare(self, cid: str, name: str, cfg: dict, resolve: Callable[[str], str]) -> dict:
        """At create: the mode, an address on each network, the published ports, the /etc files.
        `resolve` turns a container reference into an id (for container:<ref>)."""
        nets = list(cfg.get("networks") or []) or [self.default_network]
        aliases = list(cfg.get("network_aliases") or [])
        hostname = cfg.get("hostname") or cid[:12]
        st: dict = {"id": cid, "name": name, "hostname": hostname, "mode": "bridge", "target": None,
                    "attachments": {}, "ports": [], "order": []}
        special = [n for n in nets if n in MODES or n.startswith("container:")]
        if special and len(nets) > 1:
            raise InvalidConfig("networks", f"network mode {special[0]!r} cannot be combined with other networks")
        if special:
            st["mode"] = special[0].split(":", 1)[0]
        if st["mode"] != "bridge" and (cfg.get("ports") or aliases):
            field = "ports" if cfg.get("ports") else "network_aliases"
            raise InvalidConfig(field, f"{field} need a bridge network, not network mode {special[0]!r}")
        if st["mode"] == "container":
            ref = special[0].split(":", 1)[1]
            target = resolve(ref)
            if target == cid or not self._load(target):
                raise InvalidConfig("networks", f"container {ref!r} has no network namespace to share")
            st["target"] = target
        with self.store.locked():
            try:
                if st["mode"] == "bridge":
                    for n in nets:
                        if n == DEFAULT_NETWORK:
                            self.store.ensure_default()
                        self._attach(st, n, aliases)
                    if cfg.get("ports"):  # every other container's record is read: only for one that publishes
                        st["ports"] = ports.resolve(cfg["ports"], self._others_ports(cid))
                self._save(st)
                self._write_files(st, cfg)
            except BaseException:
                self.release(cid)
                for n in nets:
                    with contextlib.suppress(Exception):
                        self.store.release(n, cid)
                raise
        return self.view(cid)

    def _attach(self, st: dict, net_ref: str, aliases: list[str]) -> dict:
        try:
            rec, ip = self.store.allocate(net_ref, st["id"])
        except NoSuchNetwork:
            raise InvalidConfig("networks", f"no such network '{net_ref}'") from None
        used = {a["interface"] for a in st["attachments"].values()}
        iface = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
        names = list(dict.fromkeys([st["name"], st["id"][:12], *aliases])) if rec["dns"] else []
        att = {"network_id": rec["id"], "ip": ip, "interface": iface, "aliases": names, "mac": None}
        st["attachments"][rec["name"]] = att
        st["order"].append(rec["name"])
        return att

    def _write_files(self, st: dict, cfg: dict) -> None:
        d = self._dir(st["id"])
        if st["mode"] == "container":
            return  # the target's files are used
        first = self._first(st)
        ip = first[1]["ip"] if first else None
        files.write_in_place(d / "hostname", st["hostname"] + "\n")
        if st["mode"] == "host":
            hosts = Path("/etc/hosts").read_text() if os.path.exists("/etc/hosts") else ""
            files.write_in_place(d / "hosts", hosts + "".join(
                f"{e.partition(':')[2].strip('[]')}\t{e.partition(':')[0]}\n" for e in cfg.get("extra_hosts") or []))
        else:
            files.write_in_place(d / "hosts", files.hosts_text(st["hostname"], [st["name"]], ip,
                                                               cfg.get("extra_hosts") or []))
        servers, search = files.host_resolvers()
        dns_net = next((self._net(n) for n in st["order"] if self._net(n)["dns"]), None)
        if cfg.get("dns"):
            servers = list(cfg["dns"])
        elif dns_net is not None:
            servers = [dns_net["gateway"]]  # aardvark-dns answers there, and forwards the rest upstream
        if cfg.get("dns_search"):
            search = list(cfg["dns_search"])
        files.write_in_place(d / "resolv.conf", files.resolv_text(servers, search))

    def _net(self, name: str) -> dict:
        return self.store.get(name)

    def _first(self, st: dict) -> tuple[str, dict] | None:
        for n in st["order"]:
            if n in st["attachments"]:
                return n, st["attachments"][n]
        return None

    def oci(self, spec: dict, cid: str) -> None:
        """Point config.json at the container's namespace and /etc files."""
        st = self._load(cid)
        if st is None:
            return
        linux = spec["linux"]
        nss = [ns for ns in linux.get("namespaces", []) if ns["type"] != "network"]
        if st["mode"] != "host":
            owner = st["target"] if st["mode"] == "container" else cid
            nss.append({"type": "network", "path": str(self._ns(owner))})
        linux["namespaces"] = nss
        fdir = self._dir(st["target"] if st["mode"] == "container" else cid)
        for name in ("hosts", "hostname", "resolv.conf"):
            spec["mounts"].append({"destination": f"/etc/{name}", "type": "bind", "source": str(fdir / name),
                                   "options": ["rbind", "rprivate"]})

    # ---- start / stop -------------------------------------------------------------------------

    def setup(self, cid: str) -> None:
        """Before a start: the namespace and every attachment, or nothing at all (a failure undoes it)."""
        st = self._load(cid)
        if st is None or st["mode"] == "host":
            return
        if st["mode"] == "container":
            # Its runtime joins the target's namespace by path: mounted there again, and left there (the
            # target's teardown removes it) since this container's start may open it at any time until then.
            if not self._mount_again(st["target"]):
                raise InvalidState(f"container {st['target'][:12]} whose network it shares is not running")
            return
        with self.store.locked():
            self.teardown(cid)  # what a previous run left (an exit without stop, a crash)
            if st["ports"]:  # reads every other container's record: only for one that publishes
                ports.check(st["ports"], self._others_ports(cid))
            if st["attachments"]:
                guard.ensure()  # before the first veth: the loopback guard must hold from its first packet
            path = self._ns(cid)
            try:
                netns.create(path)
            except OSError as e:
                raise NetworkError(str(e)) from None
            try:
                for i, n in enumerate(st["order"]):
                    self._setup_one(st, n, st["ports"] if i == 0 else [])
            except BaseException:
                self.teardown(cid)
                raise
            st["active"] = True
            st["ns"] = list(netns.identity(path))  # a connect checks the namespace it mounts again against it
            self._save(st)

    def _setup_one(self, st: dict, name: str, port_maps: list[dict]) -> None:
        att = st["attachments"][name]
        net = self.store.get(att["network_id"])
        if not net.get("overlap_routes") and not os.path.exists(f"/sys/class/net/{net['bridge']}"):
            # its first container here: its bridge and route come now; another host's may have come first
            clash = routes.routed_elsewhere(net["subnet"], net["bridge"])
            if clash is not None:
                raise NetworkError(f"network {net['name']}: its subnet {net['subnet']} is already routed on this "
                                   f"host (to {clash[0]}, dev {clash[1]}): another network took it since; remove "
                                   "this network's containers and make it again with another subnet")
        att["vark"] = netavark.vark_name(net, att)
        att["isolate"] = False  # guard.py keeps networks apart
        opts = netavark.options(st["id"], st["name"], net, att, port_maps)
        if port_maps and not net.get("dn_chain"):
            net["dn_chain"] = True  # netavark makes NETAVARK-DN-<hash>: the network's last teardown removes it
            self.store.save(net)
        st.setdefault("applied", [])
        if name not in st["applied"]:
            st["applied"].append(name)  # teardown undoes it even when setup fails half-way
            self._save(st)
        before = antispoof.bridge_ports(net["bridge"])  # under the network lock: the new port is ours
        bridge_room.check(net["name"], before)
        res = netavark.run("setup", self.run_dir, self._ns(st["id"]), opts)
        try:
            att["mac"] = res[att["vark"]]["interfaces"][att["interface"]]["mac_address"]
        except (KeyError, TypeError):
            raise NetworkError(f"netavark did not report interface {att['interface']} on {net['name']}") from None
        new = antispoof.bridge_ports(net["bridge"]) - before
        att["veth"] = new.pop() if len(new) == 1 else antispoof.host_veth(self._ns(st["id"]), att["interface"])
        att["veth_index"] = antispoof.link_index(att["veth"])
        if att["veth_index"] is None:
            raise NetworkError(f"the host side of {att['interface']} on {net['name']} went during its setup")
        # its IPv6 (netavark brings it up with a link-local address): a route in the host's table beside every
        # other port's, whose insertion walks them all, and timers (address probes, router solicitations)
        netns.ipv6_off(att["veth"])
        guard.ensure()  # made once per process (connect comes here without a setup)
        try:
            antispoof.allow(att["veth_index"], att["mac"], att["ip"], also=guard.within(net["bridge"]))
        except NetworkError:
            guard.recheck()  # its table may have been removed behind our back: made again next time
            raise
        self._save(st)

    def started(self, cid: str) -> None:
        """After a start: the namespace's bind mount leaves the host's mount table (each mount on the host is
        copied into every new container's mount namespace: a thousand of them slowed each start by about 7 ms).
        The container's processes hold the namespace; setup kept its identity, checked when it is mounted again."""
        netns.unmount(self._ns(cid))  # nothing there for a container without a namespace of its own

    def _mount_again(self, cid: str) -> bool:
        """The running container's namespace mounted on its path again (if a start took it off); False if it
        does not run. A process of the container that is no longer in the namespace its start left is refused:
        netavark would act in a namespace of the tenant's choosing."""
        path = self._ns(cid)
        if netns.is_mounted(path):
            return True
        st = self._load(cid)
        if st is None or not st.get("ns") or self.ns_fd is None:
            return False
        fd = self.ns_fd(cid)
        if fd is None:
            return False
        try:
            if not netns.bind(path, fd, tuple(st["ns"])):
                raise NetworkError(f"container {st.get('name') or cid[:12]}: its process is not in the network "
                                   "namespace it started in; stop it first")
        finally:
            os.close(fd)
        return True

    @contextlib.contextmanager
    def _mounted(self, cid: str) -> Iterator[bool]:
        """The container's namespace on its path for the block (taken off again after, if it was put back for
        it); False when the container does not run."""
        path = self._ns(cid)
        if netns.is_mounted(path):
            yield True
            return
        if not self._mount_again(cid):
            yield False
            return
        try:
            yield True
        finally:
            netns.unmount(path)

    def active(self, cid: str) -> bool:
        """Whether the container's networking is set up (a start happened and no teardown since)."""
        st = self._load(cid)
        return bool(st and st.get("active"))

    def teardown(self, cid: str) -> None:
        """After a stop: the attachments undone and the namespace gone; addresses stay reserved."""
        st = self._load(cid)
        if st is None or st["mode"] != "bridge":
            return
        with self.store.locked():
            path = self._ns(cid)
            for name in list(st.get("applied", [])):
                self._teardown_one(st, name)
            st["applied"], st["active"] = [], False
            st.pop("ns", None)
            netns.remove(path)
            self._save(st)

    def _teardown_one(self, st: dict, name: str) -> None:
        att = st["attachments"].get(name)
        path = self._ns(st["id"])
        if att is not None and name in st.get("applied", []):
            try:
                net = self.store.get(att["network_id"])
            except NoSuchNetwork:
                net = None
            if net is not None:
                first = self._first(st)
                opts = netavark.options(st["id"], st["name"], net, att, st["ports"] if first and first[0] == name
                                        else [])
                if net.get("dn_chain"):
                    opts.setdefault("port_mappings", [])  # else netavark leaves the chain when it is the last
                with contextlib.suppress(NetworkError, OSError):
                    if netns.is_mounted(path):
                        netavark.run("teardown", self.run_dir, path, opts)
                    else:  # the namespace went first: netavark still removes the rules, bridge and DNS entry
                        if att.get("veth") and att.get("veth_index"):
                            antispoof.unplug(att["veth"], att["veth_index"])
                        with netns.stand_in(self.nsdir / ".stand-in", [att["interface"]]) as ns:
                            netavark.run("teardown", self.run_dir, ns, opts)
                if not os.path.exists(f"/sys/class/net/{net['bridge']}"):
                    guard.forget(net["bridge"])  # its last container: netavark removed the bridge, chains too
                    if net.pop("dn_chain", None):
                        self.store.save(net)
        if att is not None and att.get("veth"):
            if att.get("veth_index"):  # else (an older Berth's record) the sweep removes its entries once dead
                antispoof.forget(att["veth_index"], att["mac"], att["ip"])
            att["veth"] = None
        if name in st.get("applied", []):
            st["applied"].remove(name)

    def release(self, cid: str) -> None:
        """At remove: everything of the container's networking, addresses included."""
        with self.store.locked():
            st = self._load(cid)
            if st is not None:
                self.teardown(cid)
                for att in st["attachments"].values():
                    self.store.release(att["network_id"], cid)
            netns.remove(self._ns(cid))
            shutil.rmtree(self._dir(cid), ignore_errors=True)

    # ---- connect / disconnect ----------------------------------------------------------------

    def connect(self, cid: str, net_ref: str, aliases: list[str] | None = None) -> dict:
        with self.store.locked():
            st = self._load(cid)
            if st is None or st["mode"] != "bridge":
                raise InvalidConfig("network", "only a container on bridge networks can be connected to another")
            rec = self.store.get(net_ref)
            if rec["name"] in st["attachments"]:
                raise InvalidConfig("network", f"container {st['name']} is already on network {rec['name']}")
            with self._mounted(cid) as running:  # refused before anything is attached
                self._attach(st, rec["name"], list(aliases or []))
                self._save(st)
                if running:
                    try:
                        self._setup_one(st, rec["name"], [])
                    except BaseException:
                        self._teardown_one(st, rec["name"])
                        self._drop(st, rec["name"])
                        raise
            self._save(st)
            return self.view(cid)

    def disconnect(self, cid: str, net_ref: str) -> dict:
        with self.store.locked():
            st = self._load(cid)
            rec = self.store.get(net_ref)
            if st is None or rec["name"] not in st["attachments"]:
                raise InvalidConfig("network", f"container {cid[:12]} is not on network {rec['name']}")
            with self._mounted(cid):  # a running container's own interface is the one netavark removes
                self._teardown_one(st, rec["name"])
            self._drop(st, rec["name"])
            return self.view(cid)

    def _drop(self, st: dict, name: str) -> None:
        att = st["attachments"].pop(name)
        st["order"] = [n for n in st["order"] if n != name]
        self.store.release(att["network_id"], st["id"])
        self._save(st)

    # ---- views and reconcile ---------------------------------------------------------------------

    def view(self, cid: str) -> dict:
        st = self._load(cid)
        if st is None:
            return {"mode": "none", "networks": {}, "ports": [], "ip": None, "mac": None, "gateway": None}
        nets = {}
        for name in st["order"]:
            att = st["attachments"][name]
            try:
                rec = self.store.get(att["network_id"])
            except NoSuchNetwork:
                continue
            nets[name] = {"network_id": att["network_id"], "ip": att["ip"], "mac": att.get("mac"),
                          "gateway": rec["gateway"], "prefix_len": int(rec["subnet"].split("/")[1]),
                          "interface": att["interface"], "aliases": att["aliases"]}
        first = next(iter(nets.values()), {})
        mode = st["mode"] if st["mode"] != "container" else f"container:{st['target']}"
        return {"mode": mode, "networks": nets, "ports": [dict(p) for p in st["ports"]],
                "ip": first.get("ip"), "mac": first.get("mac"), "gateway": first.get("gateway"),
                "hostname": st["hostname"]}

    def reconcile(self, live: set[str]) -> dict:
        """At worker start: the networking of containers that are gone is removed, their addresses freed."""
        gone = [d.name for d in self.cdir.iterdir() if d.is_dir() and d.name not in live]
        for cid in gone:
            self.release(cid)
        if self.nsdir.exists():
            for p in self.nsdir.iterdir():
                if p.name not in live and not p.name.startswith("."):
                    netns.remove(p)
        freed = self.store.release_all_but(live)
        return {"containers": gone, "addresses": freed, "swept": self.sweep()}
