"""Five node processes on 127.0.0.1 in a chain: delivery, healing after kill -9, and partitions.

The tests share one chain and run in file order: each publishes its own records and checks that
they, and everything before them, end up in every ledger.
"""

import os

import pytest

from tests.node.net.swarm_process import all_hold, held, identical, kill_all, publish, start_node, wait_until

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

SYNC_INTERVAL_S = 4.0
CONVERGE_S = 30.0


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Five nodes, each started knowing only the previous one."""
    psk = os.urandom(32)
    root = tmp_path_factory.mktemp("chain")
    nodes = []
    try:
        for index in range(5):
            bootstrap = nodes[-1].addrs if nodes else []
            nodes.append(start_node(root / f"n{index}", psk, bootstrap, sync_interval=SYNC_INTERVAL_S))
        yield nodes
    finally:
        kill_all(nodes)


def test_record_published_anywhere_reaches_every_ledger(chain):
    published = set()
    for node in chain:
        published |= publish(node, 10)
    wait_until(lambda: all_hold(chain, published), CONVERGE_S, what="every record in every ledger")
    wait_until(lambda: identical(chain), CONVERGE_S, what="identical ledgers")


def test_nodes_that_only_knew_a_neighbour_find_each_other(chain):
    # Signed address announcements spread over gossip: the chain becomes a mesh, so no node is a cut point.
    wait_until(
        lambda: all(len(node.request({"cmd": "status"})["peers"]) == 4 for node in chain),
        CONVERGE_S,
        what="every node connected to every other",
    )


def test_killed_middle_node_heals_without_loss(chain):
    before = held(chain[0])
    middle = chain[2]
    middle.kill()  # SIGKILL: no goodbye, no flush beyond what SQLite committed
    survivors = chain[:2] + chain[3:]
    published = publish(chain[0], 5) | publish(chain[4], 5)
    wait_until(lambda: all_hold(survivors, published), CONVERGE_S, what="records crossing without the middle node")

    port = middle.addrs[0].split("/tcp/")[1].split("/")[0]
    middle.listen = f"/ip4/127.0.0.1/tcp/{port}"  # same home, key and address: peers redial it
    middle.start()
    wait_until(lambda: all_hold(chain, before | published), CONVERGE_S, what="the restarted node catching up")
    wait_until(lambda: identical(chain), CONVERGE_S, what="identical ledgers after the restart")
    wait_until(lambda: len(middle.request({"cmd": "status"})["peers"]) == 4, CONVERGE_S, what="middle redialled")


def test_partitioned_groups_converge_within_one_sync_interval_of_healing(chain):
    left, right = chain[:2], chain[2:]
    ids_of = {node.peer_id for node in chain}
    for group, other in ((left, right), (right, left)):
        for node in group:
            node.request({"cmd": "block", "peers": [peer.peer_id for peer in other]})

    def cut() -> bool:
        for group in (left, right):
            own = {node.peer_id for node in group}
            for node in group:
                if set(node.request({"cmd": "status"})["peers"]) & (ids_of - own):
                    return False
        return True

    wait_until(cut, CONVERGE_S, what="connections between the groups cut")
    left_new, right_new = publish(left[0], 20), publish(right[1], 20)
    wait_until(lambda: all_hold(left, left_new) and all_hold(right, right_new), CONVERGE_S, what="each side")
    assert not left_new & held(right[0]) and not right_new & held(left[0]), "the partition leaked"

    for node in chain:
        node.request({"cmd": "block", "peers": []})
    # Healing reconnects, and a new connection starts a sync at once: one interval is the bound.
    wait_until(lambda: all_hold(chain, left_new | right_new), SYNC_INTERVAL_S, what="records across the healed cut")
    wait_until(lambda: identical(chain), SYNC_INTERVAL_S, what="identical ledgers and best configs")
