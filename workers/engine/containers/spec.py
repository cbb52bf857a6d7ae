"""The one container spec: what a container is asked to be, defined once.

The REST serializer and the dashboard form render it, the services validate with it, job params carry its
JSON, and ContainerManager.create takes it. A new field is one `_f(...)` line here (its parser in
spec_values.py when it needs a new kind of value) plus its rendering in the form and the serializer.

Validation is pure (no host is looked at): errors are InvalidConfig naming the field. What depends on the
host (a bind source's existence, the host's CPU count, a user in the image) is checked where the container is
made, with the same field names. Fields the engine does not apply yet are declared with their validation and
refused with code "not_supported" when given a non-default value, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import spec_values as v
from .errors import InvalidConfig

NOT_SUPPORTED = "not_supported"


def _f(parse: Callable[[Any, str], Any], doc: str, default: Any = None, *, supported: bool = True) -> Any:
    """A spec field: its parser (raw JSON value -> normalised value), what it means, and whether the engine
    applies it yet."""
    meta = {"parse": parse, "doc": doc, "supported": supported}
    if isinstance(default, (list, dict)):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ContainerSpec:
    image: str | None = _f(lambda x, f: v.text(x, f, max_len=400), "image reference name[:tag]")
    command: list[str] | None = _f(v.args, "arguments after the entrypoint; None: the image's Cmd")
    entrypoint: list[str] | None = _f(v.args, "None: the image's Entrypoint (a new one drops the image's Cmd)")
    env: dict[str, str] = _f(v.env, "environment, merged over the image's by key", {})
    workdir: str | None = _f(v.workdir, "absolute working directory, made if missing; None: the image's")
    user: str | None = _f(v.user, "user[:group], names looked up in the image; None: the image's")
    hostname: str | None = _f(v.hostname, "None: the first 12 digits of the container id")
    memory: int | None = _f(v.memory, "memory limit in bytes (at least 6 MiB)")
    memory_swap: int | None = _f(v.memory_swap, "memory+swap limit in bytes, -1 unlimited; needs memory")
    cpus: float | None = _f(v.cpus, "CPU quota in CPUs (0.01 up to the host's CPUs)")
    cpu_shares: int | None = _f(v.cpu_shares, "relative CPU weight 2..262144")
    pids_limit: int | None = _f(v.pids_limit, "most processes at once; None: the host's default")
    disk: int | None = _f(v.disk, "most bytes the container may write (at least 16 MiB); None: the host's default")
    restart_policy: str = _f(v.restart_policy, "no, always, unless-stopped or on-failure[:N]", "no")
    # Engine-only for now (host CLI): the form and serializer do not offer it, since the control plane's
    # Container rows would have to follow a removal the engine makes on its own.
    auto_remove: bool = _f(v.boolean, "remove the container when it exits (Docker's HostConfig.AutoRemove, "
                                      "`run --rm`); not with a restart policy", False)
    labels: dict[str, str] = _f(v.labels, "free-form name -> value", {})
    mounts: list[str] = _f(v.mounts, "'volume:/dst[:ro]' or '/host/path:/dst[:ro]'", [])
    read_only: bool = _f(v.boolean, "read-only root filesystem", False)
    tty: bool = _f(v.boolean, "allocate a terminal", False)
    # networking: workers/engine/net (networks: names, or one of none, host, container:<ref>)
    networks: list[str] = _f(v.networks, "networks to join, or none, host, container:<name>; [] the default", [])
    network_aliases: list[str] = _f(v.network_aliases, "more names on user networks' DNS", [])
    ports: list[str] = _f(v.ports, "published ports '[ip:][host_port:]port[/proto]' (bind 127.0.0.1 unless given)",
                          [])
    dns: list[str] = _f(v.dns, "DNS server addresses", [])
    dns_search: list[str] = _f(v.dns_search, "DNS search domains", [])
    extra_hosts: list[str] = _f(v.extra_hosts, "'name:ip' lines for /etc/hosts", [])
    # Declared for what comes next; refused with "not supported yet" until the engine applies them.
    cap_add: list[str] = _f(v.capabilities, "capabilities added to the default set (not supported yet)", [],
                            supported=False)
    cap_drop: list[str] = _f(v.capabilities, "capabilities dropped from the default set (not supported yet)", [],
                             supported=False)
    devices: list[str] = _f(v.devices, "'/dev/host[:/dev/container[:rwm]]' (not supported yet)", [],
                            supported=False)
    sysctls: dict[str, str] = _f(v.sysctls, "namespaced sysctls (not supported yet)", {}, supported=False)
    ulimits: dict[str, str] = _f(v.ulimits, "rlimits, name -> 'soft[:hard]' (not supported yet)", {},
                                 supported=False)
    init: bool = _f(v.boolean, "run a minimal init as pid 1 (not supported yet)", False, supported=False)
    stop_signal: str | None = _f(v.stop_signal, "signal that stops it; None: SIGTERM (not supported yet)",
                                 supported=False)
    stop_timeout: int | None = _f(v.stop_timeout, "seconds before SIGKILL on stop; None: 10 (not supported yet)",
                                  supported=False)
    healthcheck: dict[str, Any] | None = _f(v.healthcheck, "test, interval, timeout, retries, start_period "
                                                           "(not supported yet)", supported=False)

    # ---- construction -------------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def supported_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata["supported"])

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, strict: bool = True) -> ContainerSpec:
        """A checked spec from its JSON (or a create request's values). `strict` refuses unknown keys;
        without it they are ignored (job params carry more than the spec)."""
        data = dict(data or {})
        if strict:
            unknown = sorted(set(data) - set(cls.field_names()))
            if unknown:
                raise InvalidConfig(unknown[0], f"unknown container setting {unknown[0]!r}")
        values = {}
        for f in dataclasses.fields(cls):
            raw = data.get(f.name)
            values[f.name] = f.metadata["parse"](raw, f.name)
        spec = cls(**values)
        spec.validate()
        return spec

    def replace(self, **changes: Any) -> ContainerSpec:
        """A copy with some fields set (checked again)."""
        return type(self).from_json({**self.to_json(), **changes})

    # ---- checks and JSON --------------------------------------------------------------------------

    def validate(self) -> None:
        """Rules across fields, and the refusal of fields the engine does not apply yet."""
        if self.memory_swap is not None:
            if self.memory is None:
                raise InvalidConfig("memory_swap", "memory_swap needs a memory limit as well")
            if self.memory_swap != -1 and self.memory_swap < self.memory:
                raise InvalidConfig("memory_swap", f"memory+swap limit {v.human_size(self.memory_swap)} is below "
                                                   f"the memory limit {v.human_size(self.memory)}")
        if self.auto_remove and self.restart_policy != "no":
            # as Docker's "Conflicting options": the removal at the exit would race the restart
            raise InvalidConfig("auto_remove", f"auto_remove (--rm) cannot be combined with restart policy "
                                               f"{self.restart_policy!r}: a container removed when it exits is "
                                               "never restarted")
        for f in dataclasses.fields(self):
            if not f.metadata["supported"] and getattr(self, f.name) != _default(f):
                raise InvalidConfig(f.name, f"{f.name} is not supported yet: leave it out", code=NOT_SUPPORTED)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (lists and dicts copied): what job params and container records keep."""
        return {f.name: _copy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def env_list(self) -> list[str]:
        return [f"{k}={val}" for k, val in self.env.items()]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def field_doc(name: str) -> str:
    """What a field means (for help texts of the renderings)."""
    return next(f.metadata["doc"] for f in dataclasses.fields(ContainerSpec) if f.name == name)
