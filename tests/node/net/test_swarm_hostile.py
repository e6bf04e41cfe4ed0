"""Hostile peers against a node process: garbage, oversize, forged and replayed messages, and outsiders.

The target runs in its own process next to a witness node that is connected to it but not to the
attacker: what the target forwards, the witness's validator would see. The attackers are real
libp2p hosts in this process.
"""

import os

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.varint import encode_uvarint, encode_varint_prefixed

from node.clock import now_ms
from node.net.host import HANDSHAKE_TIMEOUT_S, build_host, build_pubsub
from node.net.sync import PROTOCOL_ID as SYNC_PROTOCOL
from protocol.identity import Identity
from tests.node.net.swarm_process import POLICY, held, kill_all, make_record, publish, start_node, wait_until

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

LOCAL = "/ip4/127.0.0.1/tcp/0"
# Field 1 (subscriptions) claiming a length far past the end: protobuf's DecodeError.
BAD_PROTOBUF = b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 10


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    psk = os.urandom(32)
    root = tmp_path_factory.mktemp("hostile")
    target = start_node(root / "target", psk, sync_interval=3600)
    nodes = [target]
    try:
        witness = start_node(root / "witness", psk, target.addrs, sync_interval=3600)
        nodes.append(witness)
        wait_until(lambda: witness.request({"cmd": "status"})["peers"], 30, what="witness connected")
        yield psk, target, witness
    finally:
        kill_all(nodes)


async def _as_insider(psk: bytes, target_addr: str, attack) -> None:
    """Run ``attack(host, pubsub, target_id)`` from a host holding the swarm key."""
    host = build_host(Identity.generate(), psk, LOCAL)
    pubsub = build_pubsub(host)
    async with (
        background_trio_service(pubsub),
        background_trio_service(pubsub.router),
        host.run([multiaddr.Multiaddr(LOCAL)]),
    ):
        await pubsub.subscribe(POLICY.topic)
        info = info_from_p2p_addr(multiaddr.Multiaddr(target_addr))
        with trio.fail_after(20):
            await host.connect(info)
            while info.peer_id not in pubsub.peers:  # our pubsub stream is open: publishes will flow
                await trio.sleep(0.05)
        await attack(host, pubsub, info.peer_id)
        await trio.sleep(1.0)  # let the last writes leave before the host closes


def _still_serving(node) -> bool:
    return node.process.poll() is None and "count" in node.request({"cmd": "status"}, timeout=10)


def test_garbage_on_meshsub_and_sync_streams_leaves_the_node_running(pair):
    psk, target, witness = pair
    before = held(target)

    async def attack(host, pubsub, target_id):
        for frame in (encode_varint_prefixed(BAD_PROTOBUF), os.urandom(4096), encode_uvarint(2**21) + os.urandom(64)):
            stream = await host.new_stream(target_id, [PROTOCOL_ID_V11])
            await stream.write(frame)  # the third claims 2 MiB: over the RPC cap
            await trio.sleep(0.2)
        for garbage in (os.urandom(5000), b"\x92\xa5hello\x63", b"\xc1" * 100):
            stream = await host.new_stream(target_id, [SYNC_PROTOCOL])
            await stream.write(garbage)
            await stream.close_write()
            await trio.sleep(0.2)

    trio.run(_as_insider, psk, target.addrs[0], attack)
    assert _still_serving(target)
    assert held(target) == before
    fresh = publish(witness, 1)
    wait_until(lambda: fresh <= held(target), 30, what="the target still taking records")


def test_oversize_forged_and_replayed_records_are_neither_stored_nor_forwarded(pair):
    psk, target, witness = pair
    attacker = Identity.generate()
    honest = make_record(attacker, 1, now_ms())
    forged = bytearray(make_record(attacker, 2, now_ms()).raw)
    forged[-5] ^= 0x01  # inside the signature
    oversize = make_record(attacker, 3, now_ms()).raw + b"\x00" * 200_000
    witness_before = witness.request({"cmd": "counters"})["counters"]

    async def attack(host, pubsub, target_id):
        await pubsub.publish(POLICY.topic, bytes(forged))
        await pubsub.publish(POLICY.topic, oversize)
        await pubsub.publish(POLICY.topic, honest.raw)
        await trio.sleep(1.0)
        await pubsub.publish(POLICY.topic, honest.raw)  # a new message carrying a record already held

    trio.run(_as_insider, psk, target.addrs[0], attack)
    wait_until(lambda: honest.hex_id in held(witness), 30, what="the honest record forwarded")
    assert _still_serving(target)
    counters = target.request({"cmd": "counters"})["counters"]
    assert counters.get("gossip_invalid", 0) >= 2 and counters.get("gossip_held", 0) >= 1
    assert held(target) == held(witness)  # neither holds anything but valid records
    witness_after = witness.request({"cmd": "counters"})["counters"]
    for verdict in ("gossip_invalid", "gossip_held"):  # nothing bad or replayed reached the witness
        assert witness_after.get(verdict, 0) == witness_before.get(verdict, 0)


async def _try_to_join(host, target_addr: str, deadline_s: float, give_up: bool = False) -> bool:
    """Whether ``host`` got a session with the target. An attempt outliving the deadline fails the
    test, unless ``give_up``: then it counts as no session (the target's peer list must agree)."""
    async with host.run([multiaddr.Multiaddr(LOCAL)]):
        with trio.move_on_after(deadline_s) if give_up else trio.fail_after(deadline_s):
            try:
                await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(target_addr)))
            except Exception:
                return False
            return True
        return False


def _stock_host(psk: bytes | None, plaintext_only: bool):
    key_pair = create_new_key_pair()
    options = {"sec_opt": {PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)}} if plaintext_only else {}
    return new_host(key_pair=key_pair, psk=psk.hex() if psk else None, **options)


def test_outsiders_without_the_key_get_no_session(pair):
    psk, target, _ = pair
    held_before = held(target)
    # Our own host with another swarm's key: its bounded handshake gives up well before the library's ~40 s.
    wrong_key = build_host(Identity.generate(), os.urandom(32), LOCAL)
    assert not trio.run(_try_to_join, wrong_key, target.addrs[0], HANDSHAKE_TIMEOUT_S + 10)
    # Stock hosts, unpatched: they would retry for ~40 s; 8 s without a session is proof enough.
    outsiders = [_stock_host(None, False), _stock_host(os.urandom(32), False), _stock_host(psk, True)]
    for outsider in outsiders:
        assert not trio.run(_try_to_join, outsider, target.addrs[0], 8, True)
    assert _still_serving(target)
    outsider_ids = {str(host.get_id()) for host in [wrong_key, *outsiders]}
    assert outsider_ids.isdisjoint(target.request({"cmd": "status"})["peers"])
    assert held(target) == held_before
