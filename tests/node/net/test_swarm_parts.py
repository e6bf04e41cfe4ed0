"""The swarm's small parts: rate limits, the claim book, and the library patches on real hosts."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import libp2p.pubsub.pubsub as pubsub_module
import libp2p.pubsub.utils as pubsub_utils
import multiaddr
import pytest
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.tools.anyio_service import background_trio_service

from node.errors import NodeError
from node.net import libp2p_patches
from node.net.claims import ClaimBook
from node.net.host import build_host, build_pubsub
from node.net.ratelimit import RateLimiter
from protocol.announce import Claim
from protocol.identity import Identity

LOCAL = "/ip4/127.0.0.1/tcp/0"


def test_rate_limiter_allows_a_burst_then_the_sustained_rate():
    now = [0.0]
    limiter = RateLimiter(per_s=2.0, burst=5.0, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow("b")  # authors are limited separately
    now[0] += 1.0
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(per_s=1.0, burst=1.0, max_keys=10)
    for key in range(100):
        limiter.allow(str(key))
    assert len(limiter._buckets) == 10


def test_claim_book_keeps_the_newest_claim_until_it_expires():
    book = ClaimBook()
    old = Claim("peer", 1_000, "track", "c" * 64, 5_000)
    new = Claim("peer", 2_000, "track", "c" * 64, 9_000)
    book.add(new, 2_000)
    book.add(old, 2_000)  # arriving late changes nothing
    assert book.live(3_000) == [new]
    assert book.live(9_000) == []


def test_patches_refuse_another_library_version(monkeypatch):
    monkeypatch.setattr(libp2p_patches, "_applied", False)
    monkeypatch.setattr(libp2p_patches.libp2p, "__version__", "0.9.0")
    with pytest.raises(NodeError, match=r"libp2p==0\.8\.1"):
        libp2p_patches.apply()


def test_built_pubsub_has_room_for_bursts_and_no_traffic_stoppers():
    host = build_host(Identity.generate(), bytes(32), LOCAL)
    router = build_pubsub(host).router
    assert RpcQueue()._queue.max_size == libp2p_patches.OUTBOUND_QUEUE_RPCS
    assert pubsub_module.SUBSCRIPTION_CHANNEL_SIZE == libp2p_patches.SUBSCRIPTION_CHANNEL_MESSAGES
    assert router.protocols == [PROTOCOL_ID_V11, PROTOCOL_ID]
    assert router.heartbeat_interval == 1
    assert not router.spam_protection_enabled and not router.adaptive_gossip_enabled


def test_a_peers_signed_record_is_verified_once_not_per_message(monkeypatch):
    # Failure 5: stock code parsed and verified the sender's peer record on every message received.
    calls = []
    consume_envelope = pubsub_utils.consume_envelope

    def counting(*args, **kwargs):
        calls.append(1)
        return consume_envelope(*args, **kwargs)

    monkeypatch.setattr(pubsub_utils, "consume_envelope", counting)
    received = trio.run(_exchange, 60)
    assert received == 60
    assert len(calls) <= 4  # a handful per peer and stream, independent of the message count


@asynccontextmanager
async def two_pubsubs() -> AsyncIterator[tuple[list, list]]:
    """Two real hosts on 127.0.0.1 with the same swarm key, each with its pubsub running; not yet connected."""
    psk = bytes(32)
    hosts = [build_host(Identity.generate(), psk, LOCAL) for _ in range(2)]
    pubsubs = [build_pubsub(host) for host in hosts]
    async with (
        background_trio_service(pubsubs[0]),
        background_trio_service(pubsubs[0].router),
        background_trio_service(pubsubs[1]),
        background_trio_service(pubsubs[1].router),
        hosts[0].run([multiaddr.Multiaddr(LOCAL)]),
        hosts[1].run([multiaddr.Multiaddr(LOCAL)]),
    ):
        yield hosts, pubsubs


def test_banning_a_peer_whose_stream_dies_meanwhile_keeps_pubsub_running():
    assert trio.run(_ban_while_the_stream_dies)


async def _ban_while_the_stream_dies() -> bool:
    async with two_pubsubs() as (hosts, pubsubs):
        await pubsubs[0].subscribe("t")
        await pubsubs[1].subscribe("t")
        banned = hosts[1].get_id()
        with trio.fail_after(20):
            await hosts[1].connect(info_from_p2p_addr(hosts[0].get_addrs()[0]))
            while banned not in pubsubs[0].peer_topics.get("t", ()):
                await trio.sleep(0.05)
        stream = pubsubs[0].peers[banned]
        reset = stream.reset

        async def reset_then_the_reader_notices() -> None:
            await reset()
            pubsubs[0]._handle_dead_peer(banned)  # the library's own handler, at the moment the race hits

        stream.reset = reset_then_the_reader_notices
        pubsubs[0].add_to_blacklist(banned)
        with trio.fail_after(10):
            while banned in pubsubs[0].peers:
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # the teardown task has finished, raising or not
        return pubsubs[0].manager.is_running and banned not in pubsubs[0].peer_topics.get("t", ())


async def _exchange(count: int) -> int:
    async with two_pubsubs() as (hosts, pubsubs):
        subscription = await pubsubs[1].subscribe("t")
        await pubsubs[0].subscribe("t")
        with trio.fail_after(20):
            await hosts[1].connect(info_from_p2p_addr(hosts[0].get_addrs()[0]))
            while hosts[1].get_id() not in pubsubs[0].peer_topics.get("t", ()):
                await trio.sleep(0.05)
            for number in range(count):
                await pubsubs[0].publish("t", number.to_bytes(4, "big"))
            for _ in range(count):
                await subscription.get()
        return count
