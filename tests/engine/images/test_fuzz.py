"""Fuzz the tar path with hypothesis: whatever the entries, the extractor either unpacks inside the
target or raises an ArchiveError; it never writes outside, never crashes otherwise, and a failed import
leaves the store unchanged. `make test` runs a fixed, derandomized amount; `make fuzz` explores further."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, amount
from workers.engine.images import ArchiveError, ImageStore

from .conftest import entry, make_tar, snapshot

pytestmark = pytest.mark.root

_PARTS = st.sampled_from(["a", "b", "..", ".", "", ".wh.a", ".wh..wh..opq", "/", "etc", "x" * 10])
_NAMES = st.lists(_PARTS, min_size=1, max_size=4).map("/".join)
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                          tarfile.CHRTYPE, tarfile.FIFOTYPE])
FIXED_EXAMPLES = 600
_ENTRY = st.builds(
    lambda name, type, link, mode, data: entry(name, data if type == tarfile.REGTYPE else b"", type=type,
                                               linkname=link, mode=mode),
    _NAMES, _TYPES, _NAMES, st.sampled_from([0o644, 0o755, 0o4755, 0o2755, 0o777]), st.binary(max_size=64))


# Derandomized under `make test` (the same examples on every run, whatever the machine's load); fresh
# randomness and many more examples under `make fuzz`. print_blob: a failure prints how to replay it.
@settings(max_examples=amount(FIXED_EXAMPLES, 20_000), derandomize=not FUZZ, deadline=None,
          suppress_health_check=list(HealthCheck), database=None, print_blob=True)
@given(entries=st.lists(_ENTRY, max_size=8), cut=st.one_of(st.none(), st.integers(0, 4000)),
       flip=st.one_of(st.none(), st.integers(0, 4000)))
# Found by fuzzing once: a symlink with an empty target (symlink(2) answers ENOENT) must be refused.
@example(entries=[entry("a", type=tarfile.SYMTYPE, linkname="")], cut=None, flip=None)
def test_fuzz_tar_import(tmp_path_factory, entries, cut, flip):
    base = tmp_path_factory.mktemp("fuzz")
    try:
        store = ImageStore(base / "state")
        data = bytearray(make_tar(entries))
        if flip is not None and flip < len(data):
            data[flip] ^= 0x5A
        if cut is not None:
            data = data[:cut]
        before = snapshot(store.dir)
        try:
            image = store.import_tarball(io.BytesIO(bytes(data)), "fuzz")
        except ArchiveError:
            assert snapshot(store.dir) == before
        else:
            layer = store.layer_dir(image.diff_ids[0])
            for dirpath, dirnames, filenames in os.walk(layer):
                for name in dirnames + filenames:
                    path = os.path.join(dirpath, name)
                    assert os.path.realpath(os.path.dirname(path)).startswith(str(layer))
        assert sorted(os.listdir(base)) == ["state"]  # nothing beside the state root
        assert list(store.tmp.iterdir()) == []
    finally:
        shutil.rmtree(base)  # thousands of examples under `make fuzz`: keep the disk clean as we go
