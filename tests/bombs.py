"""Decompression bombs for tests: a gzip of about 1 MiB that expands to a 1 GiB tar of zeros."""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from pathlib import Path

GiB = 1 << 30


def zeros_tar_gz(path: Path, size: int = GiB, name: str = "zeros") -> Path:
    """`path`: gzip(tar with one file of `size` zero bytes), streamed (constant memory)."""
    header = tarfile.TarInfo(name)
    header.size = size
    header.mode = 0o644
    block = header.tobuf(format=tarfile.GNU_FORMAT)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(comp.compress(block))
        left = size
        while left:
            n = min(left, len(zeros))
            out.write(comp.compress(zeros[:n]))
            left -= n
        out.write(comp.compress(bytes(1024)))  # the two zero blocks that end a tar (size is 512-aligned)
        out.write(comp.flush())
    return path


def docker_archive_with_layer(path: Path, layer_gz: Path) -> Path:
    """A plain docker-archive whose one layer is `layer_gz` (so the bomb goes off at layer extraction)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["bomb:1"], "Layers": ["layer.tar.gz"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("config.json", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer_gz, arcname="layer.tar.gz")
    return path
