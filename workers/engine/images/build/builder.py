"""`berth build`: run a Containerfile's stages. RUN runs in a real Berth container (ContainerManager: the same
isolation as any container) and its upper dir becomes the step's layer; COPY/ADD write their layer straight from
the context or another stage; the other instructions change the config and record an empty-layer history entry.

Nothing is tagged until the last step succeeded: a failing step leaves no image (the layers of the steps that
did succeed stay in the build cache, as Docker keeps them)."""

from __future__ import annotations

import copy
import os
import secrets
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import refs
from ..changes import apply_changes
from ..errors import ImageNotFound, InvalidReference
from ..layers import _Txn
from ..layout import OCI_MANIFEST, REF_NAME, Image, host_arch, now_rfc3339
from . import copying, leftovers
from .cache import CACHE_ANNOTATION, BuildCache, step_key
from .dockerfile import Dockerfile, Instruction, Stage, expand, json_or_none, parse, split_flags
from .errors import BuildError

if TYPE_CHECKING:
    from ..store import ImageStore

Log = Callable[[str], None]
METADATA = ("ENV", "WORKDIR", "USER", "LABEL", "EXPOSE", "VOLUME", "CMD", "ENTRYPOINT", "SHELL", "STOPSIGNAL",
            "HEALTHCHECK", "MAINTAINER", "ARG")
_DURATION = {"s": 1_000_000_000, "ms": 1_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclass
class BuildResult:
    image: Image
    steps: int
    cached: int  # steps served from the cache
    new_layers: list[str] = field(default_factory=list)  # layer digests made by this build


@dataclass
class _State:
    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str
    args: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])

    @property
    def inner(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        out = dict(self.args)
        for e in self.inner.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out


def _duration(text: str, where: str) -> int:
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[:-len(unit)].replace(".", "", 1).isdigit():
            return int(float(text[:-len(unit)]) * _DURATION[unit])
    raise BuildError(f"{where}: invalid duration {text!r} (e.g. 30s, 1m)")


class Builder:
    def __init__(self, store: ImageStore, context: str | os.PathLike[str], dockerfile: str, *,
                 build_args: dict[str, str] | None = None, no_cache: bool = False, log: Log | None = None,
                 manager=None, target: str | None = None) -> None:
        self.store = store
        self.context = str(context)
        self.file: Dockerfile = parse(dockerfile)
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        self.log = log or (lambda line: None)
        self.cache = BuildCache(store)
        self._manager = manager
        self.target = target
        self.id = secrets.token_hex(6)
        self._temp_tags: list[str] = []
        self.stages: dict[str, _State] = {}
        self.cached = 0
        self.new_layers: list[str] = []
        ignore = Path(self.context) / ".dockerignore"
        self.ignore = copying.DockerIgnore(ignore.read_text() if ignore.is_file() else "")

    @property
    def manager(self):
        if self._manager is None:
            from workers.engine.containers import ContainerManager

            self._manager = ContainerManager(self.store.state_root)
        return self._manager

    # --- the run ---------------------------------------------------------------------------------

    def run(self, tags: list[str]) -> BuildResult:
        tags = [refs.tag_of(t) for t in tags]
        stages = self.file.stages
        if self.target:
            found = [s for s in stages if s.name == self.target.lower()]
            if not found:
                raise BuildError(f"no stage named {self.target!r}", field="target")
            stages = stages[:found[0].index + 1]
        total = sum(1 + len(s.steps) for s in stages)
        leftovers.sweep(self.store, lambda: self.manager)  # what builds killed mid-way left
        with leftovers.running(self.store, self.id):
            return self._run_stages(stages, total, tags)

    def _run_stages(self, stages: list[Stage], total: int, tags: list[str]) -> BuildResult:
        n = 0
        state = None
        try:
            for stage in stages:
                n += 1
                self.log(f"STEP {n}/{total}: FROM {stage.base}{' AS ' + stage.name if stage.name else ''}")
                state = self._from(stage)
                for inst in stage.steps:
                    n += 1
                    self.log(f"STEP {n}/{total}: {inst.text}")
                    self._step(state, inst, f"step {n}/{total} (line {inst.line}) `{inst.text[:120]}`")
                self.stages[str(stage.index)] = state
                if stage.name:
                    self.stages[stage.name] = state
            image = self._final(state, tags)
        finally:
            self._drop_temp_tags()
        self.log(f"--> {image.id[7:19]}" + (f" tagged {', '.join(tags)}" if tags else ""))
        return BuildResult(image, total, self.cached, self.new_layers)

    def _from(self, stage: Stage) -> _State:
        base = stage.base
        if base.lower() == "scratch":
            config = {"architecture": host_arch(), "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return _State(config, [], step_key("scratch"))
        if base.lower() in self.stages:
            prev = self.stages[base.lower()]
            return _State(copy.deepcopy(prev.config), list(prev.layers), prev.key)
        try:
            image = self.store.resolve(base)
        except (ImageNotFound, InvalidReference) as e:
            raise BuildError(f"FROM {base}: {e} (pull it first)", field="dockerfile") from None
        self.store.ensure_layers(list(zip(image.diff_ids, image.manifest["layers"], strict=True)))
        config = copy.deepcopy(image.config)
        config.setdefault("history", [])
        return _State(config, list(image.manifest["layers"]), step_key(image.digest))

    def _step(self, state: _State, inst: Instruction, where: str) -> None:
        kw = inst.keyword
        if kw == "RUN":
            self._run(state, inst, where)
        elif kw in ("COPY", "ADD"):
            self._copy(state, inst, where)
        else:
            self._metadata(state, inst, where)

    # --- metadata instructions ---------------------------------------------------------------------

    def _metadata(self, state: _State, inst: Instruction, where: str) -> None:
        kw, env = inst.keyword, state.env()
        inner = state.inner
        value = inst.value.strip()
        if kw == "ARG":
            name, eq, default = value.partition("=")
            if name in self.build_args:
                state.args[name] = self.build_args[name]
            elif eq:
                state.args[name] = expand(default, env)
            elif self.file.global_args.get(name) is not None:
                state.args[name] = self.file.global_args[name] or ""
            else:
                state.args.setdefault(name, "")
        elif kw in ("CMD", "ENTRYPOINT"):
            argv = json_or_none(value)
            inner["Cmd" if kw == "CMD" else "Entrypoint"] = argv if argv is not None else [*state.shell, value]
        elif kw == "SHELL":
            argv = json_or_none(value)
            if not argv:
                raise BuildError(f"{where}: SHELL takes a JSON array, e.g. [\"/bin/bash\", \"-c\"]")
            state.shell = argv
        elif kw == "HEALTHCHECK":
            flags, rest = split_flags(value, ("interval", "timeout", "start-period", "retries", "start-interval"),
                                      inst)
            if rest.upper() == "NONE":
                inner["Healthcheck"] = {"Test": ["NONE"]}
            else:
                head, _, cmd = rest.partition(" ")
                if head.upper() != "CMD":
                    raise BuildError(f"{where}: HEALTHCHECK [options] CMD command | NONE")
                argv = json_or_none(cmd)
                check: dict[str, Any] = {"Test": ["CMD", *argv] if argv is not None else ["CMD-SHELL", cmd]}
                for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                                  ("start-period", "StartPeriod")):
                    if flag in flags:
                        check[key] = _duration(flags[flag], where)
                if "retries" in flags:
                    check["Retries"] = int(flags["retries"]) if flags["retries"].isdigit() else 0
                inner["Healthcheck"] = check
        elif kw == "MAINTAINER":
            state.config["author"] = value
        else:
            text = expand(value, env)
            try:
                apply_changes(inner, [f"{kw} {text}"])
            except Exception as e:
                raise BuildError(f"{where}: {e}") from None
            if kw == "WORKDIR" and not text.startswith("/"):
                inner["WorkingDir"] = os.path.normpath(os.path.join(inner.get("WorkingDir") or "/", text))
        state.key = step_key(state.key, inst.text, sorted(state.args.items()) if kw == "ARG" else None)
        state.config.setdefault("history", []).append(
            {"created": now_rfc3339(), "created_by": f"/bin/sh -c #(nop) {inst.text}", "empty_layer": True})

    # --- RUN -------------------------------------------------------------------------------------------

    def _run(self, state: _State, inst: Instruction, where: str) -> None:
        argv = json_or_none(inst.value)
        argv = argv if argv is not None else [*state.shell, inst.value]
        key = step_key(state.key, "RUN", argv, sorted(state.args.items()), state.inner.get("Env"),
                       state.inner.get("User"), state.inner.get("WorkingDir"))
        if self._from_cache(state, key, inst):
            return
        m = self.manager
        base_tag = self._temp_image(state)
        c = m.create(base_tag, entrypoint=argv, env=dict(state.args), user=state.inner.get("User") or None,
                     workdir=state.inner.get("WorkingDir") or None)
        output: list[str] = []
        try:
            m.start(c["id"])
            for rec in m.logs(c["id"], follow=True):
                output.append(rec["log"])
                self.log(rec["log"].rstrip("\n"))
            done = m.wait(c["id"])
            code = done.get("exit_code")
            if code != 0:
                text = "".join(output)[-4000:]
                raise BuildError(f"{where} failed: exit code {code}" + (f"\n{text}" if text else ""),
                                 step=inst.text, output=text)
            out_tag = self._temp_tag()
            m.commit(c["id"], out_tag)
            made = self.store.resolve(out_tag)
        finally:
            try:
                m.remove(c["id"], force=True)
            except Exception as e:  # the build's result stands; the leftover container is reported
                self.log(f"warning: could not remove build container {c['id'][:12]}: {e}")
        self._add_layer(state, key, inst, made.manifest["layers"][-1], made.diff_ids[-1])

    # --- COPY / ADD ------------------------------------------------------------------------------------

    def _copy(self, state: _State, inst: Instruction, where: str) -> None:
        flags, rest = split_flags(inst.value, ("from", "chown", "chmod", "link"), inst)
        if inst.keyword == "ADD" and "from" in flags:
            raise BuildError(f"{where}: ADD has no --from (use COPY)")
        words = json_or_none(rest)
        if words is None:
            words = [expand(w, state.env()) for w in shlex.split(rest)]
        else:
            words = [expand(w, state.env()) for w in words]
        if len(words) < 2:
            raise BuildError(f"{where}: {inst.keyword} needs a source and a destination")
        sources, dest = words[:-1], words[-1]
        if inst.keyword == "ADD" and any("://" in s for s in sources):
            raise BuildError(f"{where}: ADD from a URL is not supported (builds have no network); "
                             f"fetch the file into the context")
        src_layers: list[str] = []
        if "from" in flags:
            name = flags["from"].lower()
            if name in self.stages:
                src_state = self.stages[name]
            else:
                src_state = self._from(Stage(flags["from"], None, -1))
            src_layers = self._layer_dirs(src_state)
            walker = copying.stage_walker(src_layers)
            origin = ["stage", src_state.key]
        else:
            walker = copying.context_walker(self.context, self.ignore)
            origin = ["context"]
        plan = copying.plan(walker, sources, dest, state.inner.get("WorkingDir") or "/", where)
        if inst.keyword == "ADD":
            copying.mark_archives(walker, plan)
        own_layers = self._layer_dirs(state)
        owner = copying.lookup_owner(expand(flags["chown"], state.env()), own_layers, where) \
            if flags.get("chown") else (0, 0)
        key = step_key(state.key, inst.keyword, origin, sorted(plan.mapping.items()), sorted(plan.archives),
                       copying.content_digest(walker, plan, owner), owner)
        if self._from_cache(state, key, inst):
            return
        txn = _Txn()
        try:
            fd, tmp = tempfile.mkstemp(prefix="copy-", dir=self.store.tmp)
            try:
                with os.fdopen(fd, "wb") as out:
                    copying.write_layer(out, walker, plan, owner, own_layers, where)
                with open(tmp, "rb") as f:
                    txn.layers.append(self.store._stage_layer(f, what=f"{inst.keyword} {rest[:80]}"))
            finally:
                os.unlink(tmp)
            with self.store._lock("index"):
                self.store._commit(txn)
        finally:
            self.store._discard(txn)
        layer = txn.layers[0]
        self._add_layer(state, key, inst, layer.descriptor, layer.diff_id)

    # --- layers, cache, images -------------------------------------------------------------------------

    def _layer_dirs(self, state: _State) -> list[str]:
        return [str(self.store.layer_dir(d)) for d in reversed(state.config["rootfs"]["diff_ids"])]

    def _from_cache(self, state: _State, key: str, inst: Instruction) -> bool:
        if self.no_cache:
            return False
        entry = self.cache.get(key)
        if entry is None:
            return False
        self.log("--> Using cache " + entry["layer"]["digest"][7:19])
        self.cached += 1
        self._append(state, key, inst, entry["layer"], entry["diff_id"])
        return True

    def _append(self, state: _State, key: str, inst: Instruction, layer: dict[str, Any], diff_id: str) -> None:
        state.layers.append(layer)
        state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        state.config.setdefault("history", []).append({"created": now_rfc3339(), "created_by": inst.text})
        state.key = key

    def _add_layer(self, state: _State, key: str, inst: Instruction, layer: dict[str, Any], diff_id: str) -> None:
        self._append(state, key, inst, layer, diff_id)
        self.new_layers.append(layer["digest"])
        txn = _Txn()
        desc = self.store._put_manifest(txn, state.config, state.layers, annotations={CACHE_ANNOTATION: key})
        with self.store._lock("index"):
            self.store._commit(txn)
        self.cache.put(key, desc["digest"], layer, diff_id)

    def _temp_tag(self) -> str:
        tag = f"{leftovers.TAG_PREFIX}{self.id}:s{len(self._temp_tags)}"
        self._temp_tags.append(tag)
        return tag

    def _temp_image(self, state: _State) -> str:
        """The state as an image a RUN container can be made from (tagged until the build ends)."""
        tag = self._temp_tag()
        txn = _Txn()
        desc = self.store._put_manifest(txn, state.config, state.layers)
        self.store._finish(txn, [(tag, desc)])
        return tag

    def _drop_temp_tags(self) -> None:
        if not self._temp_tags:
            return
        temp = set(self._temp_tags)
        with self.store._lock("index"):
            index = self.store._read_index()
            index["manifests"] = [d for d in index["manifests"]
                                  if d.get("annotations", {}).get(REF_NAME) not in temp]
            self.store._write_index(index)

    def _final(self, state: _State, tags: list[str]) -> Image:
        state.config["created"] = now_rfc3339()
        txn = _Txn()
        desc = self.store._put_manifest(txn, state.config, state.layers)
        desc["mediaType"] = OCI_MANIFEST
        self.store._finish(txn, [(t, desc) for t in tags] or [(None, desc)])
        return self.store._image(desc["digest"], self.store._read_index())


def build(store: ImageStore, context: str | os.PathLike[str], *, dockerfile: str | None = None,
          dockerfile_path: str | os.PathLike[str] | None = None, tags: list[str] | None = None,
          build_args: dict[str, str] | None = None, no_cache: bool = False, log: Log | None = None,
          target: str | None = None, manager=None) -> BuildResult:
    """Build the Containerfile (`dockerfile` text, or the file `dockerfile_path`, default Containerfile or
    Dockerfile in `context`) with `context` as the build context; tag the image `tags`."""
    if dockerfile is None:
        if dockerfile_path is None:
            for name in ("Containerfile", "Dockerfile"):
                if (Path(context) / name).is_file():
                    dockerfile_path = Path(context) / name
                    break
            else:
                raise BuildError(f"no Containerfile or Dockerfile in {context}", field="file")
        try:
            dockerfile = Path(dockerfile_path).read_text()
        except OSError as e:
            raise BuildError(f"cannot read {dockerfile_path}: {e.strerror}", field="file") from None
    if not Path(context).is_dir():
        raise BuildError(f"the build context {context} is not a directory", field="context")
    return Builder(store, context, dockerfile, build_args=build_args, no_cache=no_cache, log=log, manager=manager,
                   target=target).run(tags or [])
