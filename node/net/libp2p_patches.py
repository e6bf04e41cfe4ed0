"""Every change this project makes to py-libp2p 0.8.1 internals, in one place.

Each patch says which failure it guards against (numbers refer to the field notes on the library).
``apply()`` runs once per process, before any host is built, and refuses another library version:
these patches reach into private names that a new release may move.
"""

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import libp2p
import libp2p.network.swarm as swarm_module
import libp2p.pubsub.gossipsub as gossipsub_module
import libp2p.pubsub.pubsub as pubsub_module
import libp2p.pubsub.rpc_queue as rpc_queue_module
import libp2p.transport.tcp.tcp as tcp_module
import trio
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub

from node.errors import NodeError
from node.net import pnet

log = logging.getLogger("arnode.libp2p")

LIBP2P_VERSION = "0.8.1"
# Bursts of a few hundred records must fit in the per-peer outbound queue and in our
# subscription channel; both are memory the size of the burst, nothing more.
OUTBOUND_QUEUE_RPCS = 4096
SUBSCRIPTION_CHANNEL_MESSAGES = 4096
# How long our own signed peer record is reused before it is rebuilt (it only lists addresses).
SENDER_RECORD_REUSE_S = 60.0
_MAX_REMEMBERED_SENDER_RECORDS = 1024

_applied = False


def apply() -> None:
    """Patch the library once; NodeError if it is not the version these patches were written for."""
    global _applied
    if _applied:
        return
    if libp2p.__version__ != LIBP2P_VERSION:
        raise NodeError(f"arnode needs libp2p=={LIBP2P_VERSION}, found {libp2p.__version__}; reinstall it")
    _enlarge_queues()
    _cache_sender_records()
    _tolerate_a_peer_gone_during_teardown()
    _use_the_standard_pnet()
    _own_the_listen_port()
    _applied = True


def _enlarge_queues() -> None:
    # Failure 3: the per-peer outbound queue drops everything past 32 RPCs. Its size is a default
    # argument, bound when the class was defined, so the default itself must change.
    defaults = rpc_queue_module.RpcQueue.__init__.__defaults__
    rpc_queue_module.RpcQueue.__init__.__defaults__ = (OUTBOUND_QUEUE_RPCS, *defaults[1:])
    # Failure 3: the subscription channel holds 32 messages; subscribe() reads this module global.
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_CHANNEL_MESSAGES


def _own_the_listen_port() -> None:
    # The library sets SO_REUSEPORT on every TCP socket (for hole punching, which we don't do), so a
    # second daemon asking for a port in use binds it too and the kernel splits incoming
    # connections between the two, silently. With SO_REUSEADDR alone the second bind fails
    # (EADDRINUSE) and Swarm.run says so; a restart still rebinds over TIME_WAIT connections.
    def set_reuse_address(sock: Any) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    tcp_module._set_reuse_flags = set_reuse_address


def _use_the_standard_pnet() -> None:
    # Failure 8: the library's pnet is Salsa20 with an 8-byte nonce, which no other libp2p speaks;
    # the swarm wraps every raw connection with the name it imported, so that name is replaced.
    swarm_module.new_protected_conn = pnet.protect


def _cache_sender_records() -> None:
    # Failure 5: every pubsub RPC carried a freshly rebuilt signed peer record, and every received
    # RPC had its record parsed and its signature checked again: 5.2 ms CPU per message. We build
    # ours once a minute, and check a peer's record only when its bytes change.
    build = pubsub_module.env_to_send_in_RPC
    consume = pubsub_module.maybe_consume_signed_record
    built: dict[int, tuple[float, tuple[bytes, bool]]] = {}
    accepted: dict[ID, bytes] = {}

    def reused_sender_record(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        cached = built.get(id(host))
        if cached is None or now - cached[0] > SENDER_RECORD_REUSE_S:
            cached = (now, build(host))
            built[id(host)] = cached
        return cached[1]

    def consume_if_changed(msg: Any, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord") or accepted.get(peer_id) == msg.senderRecord:
            return True
        ok = consume(msg, host, peer_id)
        if ok:
            if len(accepted) >= _MAX_REMEMBERED_SENDER_RECORDS:
                accepted.clear()
            accepted[peer_id] = msg.senderRecord
        return ok

    for module in (pubsub_module, gossipsub_module):
        module.env_to_send_in_RPC = reused_sender_record
        module.maybe_consume_signed_record = consume_if_changed


def _tolerate_a_peer_gone_during_teardown() -> None:
    # A race the field notes do not list: banning a peer (add_to_blacklist) resets its pubsub stream
    # in a task and then deletes the peer, but the reset ends the peer's reading task, whose dead-peer
    # handler may delete it first. The KeyError ended the pubsub service, and with it the node.
    teardown = Pubsub._teardown_if_connected

    async def teardown_once(self: Pubsub, peer_id: ID) -> None:
        try:
            await teardown(self, peer_id)
        except KeyError:  # already removed by the dead-peer handler; finish what the library skipped
            self._forget_all_subscriptions(peer_id)

    Pubsub._teardown_if_connected = teardown_once


def guard_stream_handlers(host: IHost) -> None:
    """Failure 1: an exception escaping any stream handler ends trio.run. Wrap the one entry point
    the network calls for every inbound stream (protocol negotiation plus the chosen handler, ours
    and the library's alike): an exception resets that stream and is logged, and nothing else."""
    network = host.get_network()
    handle = network.common_stream_handler

    async def guarded(stream: INetStream) -> None:
        try:
            await handle(stream)
        except Exception as err:
            log.warning("stream %s from %s failed (%s); reset", _protocol(stream), _peer(stream), _reason(err))
            await _reset(stream)

    network.set_stream_handler(guarded)


def guard_pubsub(pubsub: Pubsub) -> None:
    """Failure 1, second path: each received pubsub message is handled in a task of the pubsub
    service, and a task that raises stops the whole service. Catch it per message."""
    push_msg: Callable[..., Awaitable[None]] = pubsub.push_msg

    async def guarded_push_msg(msg_forwarder: ID, msg: Any) -> None:
        try:
            await push_msg(msg_forwarder, msg)
        except Exception as err:
            log.warning("pubsub message from %s dropped (%s)", msg_forwarder, _reason(err))

    pubsub.push_msg = guarded_push_msg


def forget_failed_dial(host: IHost, peer_id: ID) -> None:
    """Failure 6: a peer whose dial failed is refused for 60 s by the swarm's negative cache,
    even after it comes back; the keeper clears that before each of its own redials."""
    cache = getattr(host.get_network(), "_negative_peer_cache", None)
    if cache is not None:
        cache.evict(str(peer_id))


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1.0):
        try:
            await stream.reset()
        except Exception as err:
            log.debug("reset failed: %s", _reason(err))


def _protocol(stream: INetStream) -> str:
    try:
        return str(stream.get_protocol() or "(negotiating)")
    except Exception:
        return "(unknown)"


def _peer(stream: INetStream) -> str:
    try:
        return str(stream.muxed_conn.peer_id)
    except Exception:
        return "(unknown peer)"


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:200]}".replace("\n", " ")
