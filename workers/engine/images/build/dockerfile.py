"""A Containerfile read by `dockerfile-parse` (instructions, line continuations, comments) and cut into stages;
here only what the parser leaves: `--flag=value` options, JSON (exec) or shell form, and `$VAR` expansion."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from .errors import BuildError

KNOWN = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "LABEL", "EXPOSE", "VOLUME", "CMD",
         "ENTRYPOINT", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"}
_VAR_RE = re.compile(r"\\\$|\$(?:\{(\w+)(?:(:[-+])([^}]*))?\}|(\w+))")
_FLAG_RE = re.compile(r"^--([a-z-]+)(?:=(\S*))?$")


@dataclass
class Instruction:
    keyword: str
    value: str  # the text after the keyword, continuations joined
    line: int  # 1-based
    text: str  # the instruction as written, for messages and history

    def where(self) -> str:
        return f"line {self.line}: {self.keyword} {self.value}"[:200]


@dataclass
class Stage:
    base: str  # the FROM image (ARGs before FROM expanded), or "scratch"
    name: str | None
    index: int
    platform: str | None = None
    steps: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]  # ARGs before the first FROM
    stages: list[Stage]


def expand(text: str, env: dict[str, str]) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}`; `\\$` is a literal dollar."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group(1) or m.group(4)
        value = env.get(name, "")
        if m.group(2) == ":-":
            return value or m.group(3)
        if m.group(2) == ":+":
            return m.group(3) if value else ""
        return value
    return _VAR_RE.sub(sub, text)


def split_flags(value: str, allowed: tuple[str, ...], inst: Instruction) -> tuple[dict[str, str], str]:
    """Leading `--name=value` options of COPY/ADD/FROM/HEALTHCHECK, checked against `allowed`."""
    flags: dict[str, str] = {}
    rest = value.strip()
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        m = _FLAG_RE.match(word)
        if not m or m.group(1) not in allowed:
            raise BuildError(f"{inst.where()}: unknown option {word.split('=')[0]!r} "
                             f"(allowed: {', '.join('--' + a for a in allowed) or 'none'})", field="dockerfile")
        flags[m.group(1)] = m.group(2) or ""
    return flags, rest


def json_or_none(value: str) -> list[str] | None:
    """The exec (JSON array) form of RUN/CMD/ENTRYPOINT/COPY, or None for the shell form."""
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None  # Docker too treats a bad JSON array as the shell form
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def parse(text: str) -> Dockerfile:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        inst = Instruction(item["instruction"].upper(), item["value"], item["startline"] + 1,
                           item["content"].strip())
        if inst.keyword not in KNOWN:
            raise BuildError(f"line {inst.line}: unknown instruction {inst.keyword}", field="dockerfile")
        if inst.keyword in ("ONBUILD",):
            raise BuildError(f"line {inst.line}: {inst.keyword} is not supported", field="dockerfile")
        if inst.keyword == "FROM":
            flags, rest = split_flags(inst.value, ("platform",), inst)
            words = rest.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                raise BuildError(f"{inst.where()}: FROM image [AS name]", field="dockerfile")
            defaults = {k: v or "" for k, v in global_args.items()}
            stages.append(Stage(expand(words[0], defaults), words[2].lower() if len(words) == 3 else None,
                                len(stages), flags.get("platform")))
            continue
        if not stages:
            if inst.keyword != "ARG":
                raise BuildError(f"line {inst.line}: only ARG may come before the first FROM", field="dockerfile")
            name, eq, default = inst.value.strip().partition("=")
            global_args[name] = default if eq else None
            continue
        stages[-1].steps.append(inst)
    if not stages:
        raise BuildError("the Containerfile has no FROM", field="dockerfile")
    names = [s.name for s in stages if s.name]
    if len(names) != len(set(names)):
        raise BuildError("two stages have the same name", field="dockerfile")
    return Dockerfile(global_args, stages)
