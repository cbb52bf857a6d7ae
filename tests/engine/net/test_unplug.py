"""The teardown deletes the host end of a dead container's veth by the index its setup recorded: a link that
took the same name since (netavark gives names again) is another container's and stays."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from workers.engine.net import antispoof


def _add_veth(name: str) -> int:
    """A veth pair (this kernel has no dummy links) whose host end is `name`; its index."""
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True,
                   capture_output=True)
    index = antispoof.link_index(name)
    assert index is not None
    return index


@pytest.fixture
def name():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    n = f"bthu{uuid.uuid4().hex[:8]}"
    try:
        yield n
    finally:
        subprocess.run(["ip", "link", "del", n], capture_output=True)


def test_the_link_of_the_recorded_index_is_deleted(name):
    index = _add_veth(name)
    antispoof.unplug(name, index)
    assert antispoof.link_index(name) is None


def test_a_link_that_took_the_name_since_is_left_alone(name):
    old = _add_veth(name)
    subprocess.run(["ip", "link", "del", name], check=True, capture_output=True)
    new = _add_veth(name)  # another container's veth, given the dead one's name
    assert new != old
    antispoof.unplug(name, old)
    assert antispoof.link_index(name) == new


def test_a_link_gone_already_is_no_error(name):
    index = _add_veth(name)
    subprocess.run(["ip", "link", "del", name], check=True, capture_output=True)
    antispoof.unplug(name, index)
    assert antispoof.link_index(name) is None
