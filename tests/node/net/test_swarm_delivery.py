"""Delivery paths between node processes: gossip under a burst, sync for history and for what gossip refused."""

import os
from collections import Counter

import pytest

from tests.node.net.swarm_process import all_hold, held, kill_all, publish, start_node, wait_until

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

NO_PERIODIC_SYNC_S = 3600.0  # only the sync on connecting runs: whatever arrives later came by gossip


def test_late_joiner_with_empty_ledger_gets_1000_records_through_sync(tmp_path):
    psk = os.urandom(32)
    nodes = [start_node(tmp_path / "old", psk, sync_interval=NO_PERIODIC_SYNC_S)]
    try:
        history = publish(nodes[0], 1000, pad=600)  # ~1 MB: several Yamux windows, read while written
        wait_until(lambda: len(held(nodes[0])) == 1000, 30, what="the history stored")
        # SIGTERM: a clean stop that flushes the ledger. The restart also empties the gossip caches,
        # so whatever the joiner gets, sync brought.
        assert nodes[0].stop()["count"] == 1000
        assert nodes[0].process.returncode == 0
        nodes[0].start()
        joiner = start_node(tmp_path / "new", psk, nodes[0].addrs, sync_interval=NO_PERIODIC_SYNC_S)
        nodes.append(joiner)
        wait_until(lambda: all_hold([joiner], history), 60, what="the joiner holding the history")
        arrivals = joiner.request({"cmd": "arrivals"})["arrivals"]
        assert {entry[1] for entry in arrivals.values()} == {"sync"}
        assert held(joiner) == held(nodes[0])
    finally:
        kill_all(nodes)


def test_burst_of_300_reaches_two_hops_by_gossip_alone(tmp_path):
    # Stock queues of 32, spam protection at 10 msg/s and per-message peer records delivered 8% of such a burst.
    psk = os.urandom(32)
    nodes = []
    try:
        for name in ("a", "b", "c"):
            nodes.append(start_node(tmp_path / name, psk, nodes[-1].addrs if nodes else [], sync_interval=3600))
        wait_until(lambda: len(nodes[0].request({"cmd": "status"})["peers"]) == 2, 30, what="a mesh of three")
        burst = publish(nodes[2], 300)
        wait_until(lambda: all_hold(nodes, burst), 60, what="the burst everywhere")

        def gossip_carried_all() -> bool:
            # The validator sees each pubsub message once: "accepted" if gossip brought the record
            # first, "held" if a sync on a fresh connection happened to be faster.
            counts = [node.request({"cmd": "counters"})["counters"] for node in nodes[:2]]
            return all(count.get("gossip_accepted", 0) + count.get("gossip_held", 0) == 300 for count in counts)

        wait_until(gossip_carried_all, 30, what="every message of the burst through gossip")
    finally:
        kill_all(nodes)


def test_a_member_over_its_rate_is_cut_alike_by_gossip_and_by_sync(tmp_path):
    psk = os.urandom(32)
    sender = start_node(tmp_path / "sender", psk, sync_interval=3600)
    nodes = [sender]
    try:
        strict = start_node(tmp_path / "strict", psk, sender.addrs, sync_interval=1, member_records_per_minute=10)
        nodes.append(strict)
        wait_until(lambda: strict.request({"cmd": "status"})["peers"], 30, what="connected")
        flood = publish(sender, 80)

        def cut() -> bool:
            counters = strict.request({"cmd": "counters"})["counters"]
            return counters.get("refused_over rate", 0) > 0 and counters.get("gossip_refused", 0) > 0

        wait_until(cut, 30, what="the flood cut at the strict node")
        # a whole sync session after the cut offers the rest again (it may wait for the periodic one to end)
        wait_until(lambda: strict.request({"cmd": "sync", "peer": sender.peer_id})["ok"], 30, what="a sync session")
        arrivals = strict.request({"cmd": "arrivals"})["arrivals"]
        per_minute = Counter(ts_ms // 60_000 for _, _, ts_ms in arrivals.values())
        assert set(arrivals) < set(flood) and max(per_minute.values()) == 10
    finally:
        kill_all(nodes)
