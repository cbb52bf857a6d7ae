"""A stop may leave a container's networking for later (ContainerManager.stop(network=False)): a move tears it down
while it packs (netavark takes a fifth of a second) with teardown_network, which leaves a running one alone."""

from __future__ import annotations

SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]


def test_a_stop_may_leave_the_networking_to_teardown_network(mgr):
    mgr.net.create("later", subnet="10.231.91.0/24")
    mgr.create("busybox", name="mover", command=SLEEP, networks=["later"])
    mgr.create("busybox", name="stays", command=SLEEP, networks=["later"])
    mgr.start("mover")
    mgr.start("stays")
    mover, stays = mgr.inspect("mover")["id"], mgr.inspect("stays")["id"]
    assert mgr.net.active(mover) and mgr.net.active(stays)

    assert mgr.stop("mover", timeout=5, network=False)["state"] == "exited"
    assert mgr.net.active(mover)  # left as asked
    mgr.teardown_network("stays")  # running: nothing undone
    assert mgr.net.active(stays)
    mgr.teardown_network("mover")
    assert not mgr.net.active(mover) and not mgr.net._ns(mover).exists() and mgr.net.active(stays)
    mgr.teardown_network("mover")  # once more: nothing left to do

    assert mgr.stop("stays", timeout=5)["state"] == "exited" and not mgr.net.active(stays)  # the default as before
