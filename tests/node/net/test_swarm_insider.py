"""A hostile insider against a swarm with a roster: three node processes on 127.0.0.1.

A founds the swarm (its admin) and invites B and M; M turns hostile and is revoked. Sybil
identities (fresh keys holding the swarm key, never invited) attack from real libp2p hosts in
this process. Figures for floods (delivery delay, memory) come from bench/insider.py.
"""

import os
import select
import socket

import pytest
import trio

from node.clock import now_ms
from node.net.sync import PROTOCOL_ID as SYNC_PROTOCOL
from protocol import announce
from protocol.identity import Identity
from tests.node.net.swarm_process import (
    DEFAULT_CONFIG,
    attacker,
    held,
    kill_all,
    make_record,
    publish,
    roster_policy,
    start_node,
    wait_until,
)

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes
BETTER = {"matrix_lr": 0.05}  # the insider's "discovery"
FAST = {"sync_interval": 2.0}


def best_of(node) -> str | None:
    return next(iter(node.request({"cmd": "status"})["best"].values()), None)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    root = tmp_path_factory.mktemp("insider")
    psk = os.urandom(32)
    seeds = {name: os.urandom(32) for name in "ABM"}
    founder = Identity.from_seed(seeds["A"]).peer_id
    nodes = []
    try:
        a = start_node(root / "A", psk, seed=seeds["A"], founder=founder, **FAST)
        nodes.append(a)
        b = start_node(root / "B", psk, a.addrs, seed=seeds["B"], founder=founder, **FAST)
        nodes.append(b)
        m = start_node(root / "M", psk, a.addrs, seed=seeds["M"], founder=founder, **FAST)
        nodes.append(m)
        invites = {a.request({"cmd": "invite", "peer": peer.peer_id})["published"] for peer in (b, m)}
        wait_until(lambda: all(invites <= held(node) for node in nodes), 60, what="invites spread")
        baseline = publish(b, 2)
        wait_until(lambda: all(baseline <= held(node) for node in nodes), 60, what="baseline spread")
        yield {"psk": psk, "a": a, "b": b, "m": m, "root": root, "founder": founder, "nodes": nodes}
    finally:
        kill_all(nodes)


async def _attack_from(psk: bytes, identity: Identity, target_addr: str, topic: str, attack) -> None:
    """Run ``attack(host, pubsub, target_id)`` from a host with the swarm key and ``identity``."""
    async with attacker(psk, identity, target_addr, topic) as (host, pubsub, target_id):
        await attack(host, pubsub, target_id)
        await trio.sleep(1.0)  # let the last writes leave


def test_sybils_cannot_verify_a_config_and_their_records_and_announcements_are_refused(swarm):
    a, b = swarm["a"], swarm["b"]
    policy = roster_policy([swarm["founder"]])
    sybils = [Identity.generate() for _ in range(3)]
    forged = [make_record(s, n, now_ms(), diff=BETTER, bpb=500_000) for n, s in enumerate(sybils)]
    trap = socket.create_server(("127.0.0.1", 0))  # where the Sybils ask to be dialled
    trap_addr = f"/ip4/127.0.0.1/tcp/{trap.getsockname()[1]}"
    best_before = best_of(a)
    announce_topic = f"/arnode/{policy.swarm_id}/announce/1"

    async def attack(host, pubsub, target_id):
        for record in forged:
            await pubsub.publish(policy.topic, record.raw)
        for sybil in sybils:
            await pubsub.publish(announce_topic, announce.sign_addrs(sybil, [trap_addr], now_ms()))

    try:
        trio.run(_attack_from, swarm["psk"], sybils[0], a.addrs[0], policy.topic, attack)
        wait_until(
            lambda: a.request({"cmd": "counters"})["counters"].get("announce_refused", 0) >= 3, 30, what="refusals"
        )
        counters = a.request({"cmd": "counters"})["counters"]
        assert counters.get("gossip_refused", 0) >= 3
        forged_ids = {record.hex_id for record in forged}
        for node in (a, b):
            assert not forged_ids & held(node)
            assert best_of(node) == best_before == DEFAULT_CONFIG
        publish(b, 1)  # a round of announcements and keeper ticks later, still no dial reached the trap
        wait_until(lambda: a.request({"cmd": "counters"})["counters"].get("gossip_accepted", 0) >= 1, 30)
        assert select.select([trap], [], [], 3.0)[0] == []
    finally:
        trap.close()


def test_a_non_member_gets_no_sync_session(swarm):
    a = swarm["a"]
    before = a.request({"cmd": "counters"})["counters"].get("sync_refused", 0)

    async def attack(host, pubsub, target_id):
        stream = await host.new_stream(target_id, [SYNC_PROTOCOL])
        await stream.write(b"\x92\xa5hello\x01")
        answer = b""
        with trio.move_on_after(5):
            try:
                answer = await stream.read(1024)
            except Exception:  # closed or reset on us: either way nothing was served
                answer = b""
        assert answer == b""

    outsider = Identity.generate()
    trio.run(_attack_from, swarm["psk"], outsider, a.addrs[0], roster_policy([swarm["founder"]]).topic, attack)
    assert a.request({"cmd": "counters"})["counters"].get("sync_refused", 0) > before


def test_a_revoked_members_records_vanish_everywhere_and_the_previous_best_returns(swarm):
    a, b, m = swarm["a"], swarm["b"], swarm["m"]
    nodes = [a, b, m]
    previous = best_of(a)
    hostile = publish(m, 2, diff=BETTER, bpb=500_000)  # a discovery and a re-run: one run alone is never accepted
    wait_until(lambda: all(best_of(node) not in (None, previous) for node in nodes), 60, what="insider's best")
    a.request({"cmd": "revoke", "peer": m.peer_id})
    wait_until(lambda: all(best_of(node) == previous for node in nodes), 60, what="previous best back")
    for node in nodes:
        assert not hostile & held(node)
    # A node that joins now meets the revocation and the records in whatever order sync brings them.
    seed = os.urandom(32)
    a.request({"cmd": "invite", "peer": Identity.from_seed(seed).peer_id})
    late = start_node(swarm["root"] / "late", swarm["psk"], a.addrs, seed=seed, founder=swarm["founder"], **FAST)
    swarm["nodes"].append(late)
    wait_until(lambda: held(late) == held(a), 60, what="late node caught up")
    assert best_of(late) == previous
    refused = m.request({"cmd": "publish", "n": 1})  # even its own node no longer takes its records
    assert "was revoked" in refused["error"]
    publish(b, 1)
    wait_until(lambda: held(a) == held(b) == held(late), 60, what="honest records still flow")
