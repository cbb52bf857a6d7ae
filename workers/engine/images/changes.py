"""`--change` instructions applied to an image config, as `docker commit --change` / `docker import --change`."""

from __future__ import annotations

import json
import shlex
from typing import Any

from .errors import ImageError

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "LABEL", "USER", "EXPOSE", "STOPSIGNAL", "VOLUME")


def _command(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            raise ImageError(f"invalid JSON array in change: {value!r} ({e.msg})") from None
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise ImageError(f"the JSON form must be an array of strings: {value!r}")
        return parsed
    return ["/bin/sh", "-c", value]


def _pairs(value: str, what: str) -> list[tuple[str, str]]:
    words = shlex.split(value)
    if len(words) >= 2 and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # legacy `ENV key value`
    out = []
    for word in words:
        if "=" not in word:
            raise ImageError(f"{what} needs key=value pairs, got {word!r}")
        key, _, val = word.partition("=")
        out.append((key, val))
    return out


def apply_changes(config: dict[str, Any], changes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply instructions like 'CMD ["sh"]', 'ENV A=1', 'WORKDIR /app', 'LABEL a=b' to `config`
    (the image config's inner `config` object) in place, and return it."""
    for change in changes:
        keyword, _, value = change.strip().partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword not in SUPPORTED:
            raise ImageError(f"unsupported change {keyword!r}: use one of {', '.join(SUPPORTED)}")
        if not value:
            raise ImageError(f"change {keyword} needs a value")
        if keyword == "CMD":
            config["Cmd"] = _command(value)
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = _command(value)
        elif keyword == "ENV":
            env = [e for e in config.get("Env") or []]
            for key, val in _pairs(value, "ENV"):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={val}"]
            config["Env"] = env
        elif keyword == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(value, "LABEL"))
            config["Labels"] = labels
        elif keyword == "WORKDIR":
            config["WorkingDir"] = value
        elif keyword == "USER":
            config["User"] = value
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = value
        elif keyword == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in value.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            for vol in _command(value) if value.startswith("[") else value.split():
                vols[vol] = {}
            config["Volumes"] = vols
    return config
