"""A sync session ends with a close or a reset on both sides: garbage gets a reset at once, never a stream left open."""

import os

import msgpack
import pytest
import trio
from libp2p.network.stream.exceptions import StreamEOF, StreamReset

from node.net.sync import PROTOCOL_ID, VERSION
from protocol.identity import Identity
from tests.node.net.swarm_process import POLICY, attacker, kill_all, start_node

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

REPEATS = 10  # per kind of garbage: the stream left open happened in 1 session of 30
GARBAGE = [b"\xc1" * 100, msgpack.packb({"hello": VERSION}), msgpack.packb(["hello", VERSION + 1])]
ANSWER_WITHIN_S = 5.0  # far below the node's 60 s session deadline and its 10 s wait for a hello


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    psk = os.urandom(32)
    node = start_node(tmp_path_factory.mktemp("endings") / "target", psk, sync_interval=3600)
    try:
        yield psk, node
    finally:
        kill_all([node])


async def _ending(psk: bytes, target_addr: str, garbage: bytes) -> str:
    """How a session that opened with ``garbage`` ended, as the peer saw it: "reset", "eof" or "open".

    A fresh key each time: the node bans a key that keeps sending garbage, and limits its sessions.
    """
    async with attacker(psk, Identity.generate(), target_addr, POLICY.topic) as (host, _pubsub, target_id):
        stream = await host.new_stream(target_id, [PROTOCOL_ID])
        await stream.write(garbage)
        ending = "open"
        with trio.move_on_after(ANSWER_WITHIN_S):
            try:
                # Read without a size: py-libp2p 0.8.1's Yamux reports a reset as EOF to a sized read once
                # the stream is dropped, but as a reset to this one.
                while await stream.read():
                    pass  # the node sends nothing to a peer that broke the protocol: read to the end
            except StreamReset:
                ending = "reset"
            except StreamEOF:
                ending = "eof"
        await stream.reset()
    return ending


def test_garbage_on_the_sync_protocol_resets_the_stream_every_time(target):
    psk, node = target
    endings = [trio.run(_ending, psk, node.addrs[0], garbage) for garbage in GARBAGE * REPEATS]
    assert endings == ["reset"] * len(endings)
