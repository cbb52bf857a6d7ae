"""A network's bridge takes 1023 containers (the kernel's limit, checked on this machine: the 1024th port
of a bridge is refused with EXFULL); Berth refuses the next start itself, saying why."""

from __future__ import annotations

import pytest

from workers.engine.net import bridge_room


def test_the_1023rd_container_starts_and_the_1024th_is_refused_saying_why():
    ports = {f"veth{i}" for i in range(bridge_room.BRIDGE_MAX_PORTS - 1)}
    bridge_room.check("big", ports)  # 1022 attached: room for one more
    ports.add("veth-last")
    with pytest.raises(bridge_room.NetworkFull) as refused:
        bridge_room.check("big", ports)
    assert refused.value.code == "network_full" and refused.value.field == "networks"
    assert "network big has 1023 running containers" in str(refused.value)
    assert "another network" in str(refused.value)
