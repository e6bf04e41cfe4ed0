"""The swarm: this node's libp2p host, gossip, sync and peer keeping, under one trio nursery.

Records reach the ledger by two paths, each through the swarm's one gate (node/store/gate.py:
judged, decided and stored once, with the same per-member limits): GossipSub (fast, lossy) and
anti-entropy sync (slow, complete). Gossip's validator asks the gate to admit each record: it
runs synchronously inside the library, rejects and never raises (bad bytes, other swarms,
replays, non-members, members over their share), and hands each admitted record to the one task
that stores gossip (``_store_gossip``), in batches. A record that gossip drops for any other
reason still arrives by sync, which runs on every new connection and every ``sync_interval_s``
with a random peer. Our own records are signed by us, so the gate decides them without verifying
them again.

Insiders are members too, so every limit is per member, and a peer that keeps sending invalid
data (records, announcements, sync sessions) is disconnected and ignored for a while (PeerScore).
A sync session that a peer breaks is reset, one that ends otherwise is closed.
Inbound sync sessions are served only to members, at most one per peer and MAX_INBOUND_SYNCS in
all, and no more often than a per-peer rate.

New records from peers are reported through ``on_record(record, via)`` with ``via`` one of
"gossip" or "sync": a plain callable that must not block. It is not called for our own records.
"""

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.clock import now_ms
from node.errors import NodeError
from node.net import sync
from node.net.addresses import shareable_addrs
from node.net.claims import ClaimBook
from node.net.host import build_host, build_pubsub
from node.net.keeper import Keeper
from node.net.libp2p_patches import OUTBOUND_QUEUE_RPCS
from node.net.netstream import NetStreamAdapter
from node.net.peerscore import PeerScore
from node.net.ratelimit import RateLimiter
from node.store.gate import Gate
from node.store.ledger import Ledger
from node.store.members import LIMITS, Limits
from protocol import announce
from protocol.announce import Claim
from protocol.errors import ProtocolError
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import Record
from protocol.roster import NotAdmitted

log = logging.getLogger("arnode.swarm")

ANNOUNCE_RATE_PER_S = 2.0
ANNOUNCE_BURST = 20.0
# Publishing: at most this many records a second from this node, and never into a peer queue
# that is more than half full, so the library's queues never overflow and drop silently.
PUBLISH_PER_S = 500.0
PUBLISH_QUEUE = 100_000
GOSSIP_STORE_QUEUE = 1024  # accepted gossip waiting to be stored; past it, sync brings the rest
SYNC_DEADLINE_S = 60.0
MAX_PARALLEL_SYNCS = 4
MAX_INBOUND_SYNCS = 8  # sessions we serve at once, one per peer at most
# Sessions a peer may start with us: an honest one starts one on connecting and one every ~30 s.
INBOUND_SYNC_PER_S = 0.2
INBOUND_SYNC_BURST = 4.0
OPEN_STREAM_TIMEOUT_S = 10.0


class Swarm:
    def __init__(
        self,
        identity: Identity,
        psk: bytes,
        policy: Policy,
        ledger: Ledger,
        listen: str = "/ip4/0.0.0.0/tcp/4001",
        bootstrap: Iterable[str] = (),
        sync_interval_s: float = 30.0,
        announce_interval_s: float = 10.0,
        on_record: Callable[[Record, str], None] | None = None,
        limits: Limits = LIMITS,
        max_backoff_s: float = 30.0,
        dial_any_address: bool = False,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.ledger = ledger
        self.listen = listen
        self.sync_interval_s = sync_interval_s
        self.announce_interval_s = announce_interval_s
        self.on_record = on_record
        self.host: IHost = build_host(identity, psk, listen)
        self.pubsub: Pubsub = build_pubsub(self.host)
        self.score = PeerScore()
        self.keeper = Keeper(
            self.host,
            max_backoff_s=max_backoff_s,
            is_member=ledger.is_member,
            is_banned=self.score.banned,
            dial_any_address=dial_any_address,
        )
        for addr in bootstrap:
            self.keeper.add_bootstrap(addr)
        self.claims = ClaimBook()
        self.announce_topic = f"/arnode/{policy.swarm_id}/announce/1"
        self._announce_limit = RateLimiter(ANNOUNCE_RATE_PER_S, ANNOUNCE_BURST)
        self._latest_addrs: dict[str, int] = {}  # author -> ts_ms of the newest addrs we took
        self._since: dict[str, float] = {}  # peer -> wall-clock time its connection opened
        self._publish_send, self._publish_receive = trio.open_memory_channel[tuple[str, bytes]](PUBLISH_QUEUE)
        self._new_peer_send, self._new_peer_receive = trio.open_memory_channel[str](1024)
        self._sync_send, self._sync_receive = trio.open_memory_channel[str](1024)  # peers to start a sync with
        self.counters: Counter[str] = Counter()  # what the validators decided, for status and tests
        self._syncing: set[str] = set()
        self._sync_slots = trio.Semaphore(MAX_PARALLEL_SYNCS)
        self.gate = Gate(ledger, limits=limits)  # every record in; its workers verify sync batches on every core
        self._gossip_send, self._gossip_receive = trio.open_memory_channel[Record](GOSSIP_STORE_QUEUE)
        self._serving: set[str] = set()  # peers whose sync session we are serving now
        self._inbound_sync_limit = RateLimiter(INBOUND_SYNC_PER_S, INBOUND_SYNC_BURST)
        self._ban_send, self._ban_receive = trio.open_memory_channel[str](256)
        self.host.get_network().register_notifee(_ConnectionEvents(self))
        self.host.set_stream_handler(sync.PROTOCOL_ID, self._serve_sync)
        self.pubsub.set_topic_validator(policy.topic, self._validate_record, is_async_validator=False)
        self.pubsub.set_topic_validator(self.announce_topic, self._validate_announcement, is_async_validator=False)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    # --- running ---

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, keep peers, gossip and sync until cancelled; the host is closed on the way out."""
        # Failure 2: pubsub must be running before the first connection exists, or its streams never open.
        async with (
            background_trio_service(self.pubsub),
            background_trio_service(self.pubsub.router),
            self.host.run([multiaddr.Multiaddr(self.listen)]),
        ):
            if not self.host.get_addrs():  # the library logs a failed listen and carries on deaf
                raise NodeError(f"cannot listen on {self.listen}: the port is in use or the address is not ours")
            records = await self.pubsub.subscribe(self.policy.topic)
            announcements = await self.pubsub.subscribe(self.announce_topic)
            try:
                async with trio.open_nursery() as nursery:
                    # the library needs its subscriptions read; the validators already took what they carry
                    nursery.start_soon(_drain, records)
                    nursery.start_soon(_drain, announcements)
                    nursery.start_soon(self._store_gossip)
                    nursery.start_soon(self.keeper.run)
                    nursery.start_soon(self._publisher)
                    nursery.start_soon(self._announcer)
                    nursery.start_soon(self._sync_sessions)
                    nursery.start_soon(self._sync_new_peers)
                    nursery.start_soon(self._sync_periodically)
                    nursery.start_soon(self._enforce_bans)
                    log.info("listening on %s", " ".join(self.listen_addrs()))
                    task_status.started()
            finally:
                log.info("closing the host")
                self.gate.close()

    def listen_addrs(self) -> list[str]:
        """Our dialable addresses, each ending in /p2p/<peer id>; a wildcard becomes this machine's IPs."""
        found: list[str] = []
        for addr in map(str, self.host.get_addrs()):
            for usable in shareable_addrs(addr):
                if usable not in found:
                    found.append(usable)
        return found

    def peers(self) -> list[dict[str, Any]]:
        """Connected peers: id, the addresses we reach them on, and since when (Unix seconds)."""
        network = self.host.get_network()
        found = []
        for peer in self.host.get_connected_peers():
            addrs = sorted({str(addr) for conn in network.get_connections(peer) for addr in _remote(conn)})
            found.append({"id": str(peer), "addrs": addrs, "since": self._since.get(str(peer))})
        return sorted(found, key=lambda peer: peer["id"])

    async def set_blocked(self, peer_ids: Iterable[str]) -> None:
        """Refuse exactly these peers from now on and drop our connections to them: a ban list."""
        blocked = set(peer_ids)
        for peer in self.keeper.blocked - blocked:
            self.pubsub.remove_from_blacklist(ID.from_base58(peer))
        for peer in blocked:
            self.pubsub.add_to_blacklist(ID.from_base58(peer))
        self.keeper.blocked = blocked
        for peer in blocked & self.keeper.connected():
            await self.host.disconnect(ID.from_base58(peer))

    # --- publishing ---

    async def publish(self, record: Record) -> None:
        """Store our record through the gate (made by ``sign``: decided, not verified again), then queue it
        for gossip. NotAdmitted when the gate refuses it: this node is not a member (yet) or over its share.
        """
        self.gate.add_record(record)
        await self._publish_send.send((self.policy.topic, record.raw))

    def publish_nowait(self, record: Record) -> None:
        """``publish`` for callers outside trio's async code (the control socket), for a record already
        verified; NodeError when the queue is full."""
        self.gate.add_record(record, source="the control socket")
        try:
            self._publish_send.send_nowait((self.policy.topic, record.raw))
        except trio.WouldBlock:
            raise NodeError("the publish queue is full; the record is stored and sync will spread it") from None

    async def announce_claim(self, track_key: str, config_hash: str, ttl_s: float) -> None:
        """Tell the swarm we are running ``config_hash`` on ``track_key`` for the next ``ttl_s`` seconds."""
        ts = now_ms()
        data = announce.sign_claim(self.identity, track_key, config_hash, ts, int(ttl_s * 1000))
        self.claims.add(announce.decode(data, ts), ts)
        await self._publish_send.send((self.announce_topic, data))

    async def release_claim(self, track_key: str, config_hash: str) -> None:
        """Withdraw our claim: a claim that expires a millisecond after it is made replaces it everywhere."""
        await self.announce_claim(track_key, config_hash, ttl_s=0.001)

    def live_claims(self, now_ms: int) -> list[Claim]:
        """Live claims of members (a revoked member's claims stop counting at once)."""
        return [claim for claim in self.claims.live(now_ms) if self.ledger.is_member(claim.author)]

    async def _publisher(self) -> None:
        async for topic, data in self._publish_receive:
            while self._queues_busy():
                await trio.sleep(0.01)
            await self.pubsub.publish(topic, data)
            await trio.sleep(1 / PUBLISH_PER_S)

    def _queues_busy(self) -> bool:
        return any(len(queue) > OUTBOUND_QUEUE_RPCS // 2 for queue in self.pubsub.peer_queues.values())

    async def _announcer(self) -> None:
        """Our addresses and live claims, again and again: peers joining later learn them too."""
        while True:
            ts = now_ms()
            addrs = [addr.rsplit("/p2p/", 1)[0] for addr in self.listen_addrs()][: announce.MAX_ADDRS]
            if addrs:
                await self._publish_send.send((self.announce_topic, announce.sign_addrs(self.identity, addrs, ts)))
            for claim in self.claims.mine(self.peer_id, ts):
                data = announce.sign_claim(self.identity, claim.track_key, claim.config, ts, claim.expires_ms - ts)
                await self._publish_send.send((self.announce_topic, data))
            await trio.sleep(self.announce_interval_s)

    # --- validators: run by pubsub for every message, ours included; they reject and never raise ---

    def _validate_record(self, forwarder: ID, msg: Any) -> bool:
        try:
            verdict = self._judge_record(str(forwarder), msg.data)
        except NotAdmitted:  # valid, but not a member's (yet) or over its share: no fault of the forwarder's
            verdict = "refused"  # the gate logged it
        except (ProtocolError, ValueError) as err:  # the gate logged it
            self._penalise(str(forwarder), str(err))
            verdict = "invalid"
        except Exception as err:  # a bug or a full disk must cost one message, not the node
            log.warning("gossip from %s dropped: %s: %s", forwarder, type(err).__name__, err)
            verdict = "failed"
        self.counters[f"gossip_{verdict}"] += 1
        return verdict in ("accepted", "own")

    def _judge_record(self, forwarder: str, data: bytes) -> str:
        """What gossip does with one message: each check once, in the gate, before it is forwarded."""
        if forwarder == self.peer_id:
            return "own"  # our own publish: stored before it was queued
        if self._gossip_send.statistics().current_buffer_used >= GOSSIP_STORE_QUEUE:
            return "busy"  # storing lags behind a burst: not judged or forwarded now, sync brings it
        record = self.gate.admit(data, now_ms(), source=f"gossip from {forwarder}")
        if record is None:
            return "held"
        self._gossip_send.send_nowait(record)  # room was checked above, and nothing ran since
        return "accepted"

    async def _store_gossip(self) -> None:
        """The one consumer of what gossip's validator admitted: stored in batches, one transaction each."""
        async for record in self._gossip_receive:
            batch = [record]
            while len(batch) < GOSSIP_STORE_QUEUE:
                try:
                    batch.append(self._gossip_receive.receive_nowait())
                except trio.WouldBlock:
                    break
            self._notify(self.gate.store_admitted(batch), "gossip")

    def _validate_announcement(self, forwarder: ID, msg: Any) -> bool:
        try:
            if self._accept_announcement(msg.data):
                self.counters["announce_accepted"] += 1
                return True
            self.counters["announce_stale"] += 1
            return False
        except NotAdmitted as err:
            log.debug("announcement from %s refused: %s", forwarder, err)
            self.counters["announce_refused"] += 1
            return False
        except (ProtocolError, ValueError) as err:
            log.info("announcement from %s rejected: %s", forwarder, err)
            self._penalise(str(forwarder), str(err))
        except Exception as err:
            log.warning("announcement from %s dropped: %s: %s", forwarder, type(err).__name__, err)
        self.counters["announce_invalid"] += 1
        return False

    def _accept_announcement(self, data: bytes) -> bool:
        ts = now_ms()
        news = announce.decode(data, ts)
        if not self.ledger.is_member(news.author):
            raise NotAdmitted(f"announcement by {news.author}, who is not a member")
        if news.author != self.peer_id and not self._announce_limit.allow(news.author):
            raise ValueError(f"author {news.author} announces too often")
        if isinstance(news, Claim):
            self.claims.add(news, ts)
            return True
        if news.ts_ms <= self._latest_addrs.get(news.author, -1):
            return False  # not newer than what we hold: a replay or a duplicate, not forwarded
        self._latest_addrs[news.author] = news.ts_ms
        if news.author != self.peer_id:
            self.keeper.learn(news.author, list(news.addrs))
        return True

    # --- sync ---

    async def _serve_sync(self, stream: INetStream) -> None:
        peer = str(stream.muxed_conn.peer_id)
        adapter = NetStreamAdapter(stream)
        refusal = self._sync_refusal(peer)
        if refusal:
            self.counters["sync_refused"] += 1
            log.debug("sync from %s refused: %s", peer, refusal)
            await adapter.aclose()
            return
        self._serving.add(peer)
        try:
            report = await self._reconcile(adapter, peer, initiator=False)
        finally:
            self._serving.discard(peer)
        _log_sync(peer, report)

    def _sync_refusal(self, peer: str) -> str:
        """Why we will not serve ``peer`` a sync session now; empty if we will."""
        if self.score.banned(peer) or peer in self.keeper.blocked:
            return "banned"
        if not self.ledger.is_member(peer):
            return "not a member"
        if peer in self._serving:
            return "already in a session with us"
        if len(self._serving) >= MAX_INBOUND_SYNCS:
            return f"{MAX_INBOUND_SYNCS} sessions already"
        if not self._inbound_sync_limit.allow(peer):
            return "too many sessions lately"
        return ""

    async def sync_with(self, peer: str) -> Any:
        """Reconcile our ledger with ``peer``'s now; the SyncReport, or None if no stream opened."""
        if peer in self._syncing:
            return None
        self._syncing.add(peer)
        try:
            async with self._sync_slots:
                stream = None
                with trio.move_on_after(OPEN_STREAM_TIMEOUT_S):
                    try:
                        stream = await self.host.new_stream(ID.from_base58(peer), [sync.PROTOCOL_ID])
                    except Exception as err:
                        log.info("sync with %s: no stream (%s: %s)", peer, type(err).__name__, str(err)[:200])
                if stream is None:
                    return None
                report = await self._reconcile(NetStreamAdapter(stream), peer, initiator=True)
                _log_sync(peer, report)
                return report
        finally:
            self._syncing.discard(peer)

    async def _reconcile(self, stream: NetStreamAdapter, peer: str, initiator: bool) -> sync.SyncReport:
        """One session with ``peer``, then the stream ended: reset if the peer broke the protocol (and a
        point against it), else closed; whatever happened, the stream is released."""
        report = None
        try:
            report = await sync.reconcile(
                stream,
                self.gate,
                initiator=initiator,
                deadline_s=SYNC_DEADLINE_S,
                peer=peer,
                on_added=lambda records: self._notify(records, "sync"),
            )
        finally:
            await (stream.reset() if report is not None and report.peer_fault else stream.aclose())
        if report.peer_fault:
            self._penalise(peer, report.reason)
        return report

    async def _sync_sessions(self) -> None:
        """The nursery every outbound sync session runs in, started as new connections and the timer ask."""
        async with trio.open_nursery() as sessions:
            async for peer in self._sync_receive:
                sessions.start_soon(self.sync_with, peer)

    def _ask_sync(self, peer: str) -> None:
        try:
            self._sync_send.send_nowait(peer)
        except trio.WouldBlock:  # a burst of connections: the periodic sync reaches the rest
            log.debug("sync requests queue full: %s waits for the periodic sync", peer)

    async def _sync_new_peers(self) -> None:
        async for peer in self._new_peer_receive:
            if peer in self.keeper.blocked or self.score.banned(peer):
                await self.host.disconnect(ID.from_base58(peer))
                continue
            # One side starts: the one with the smaller ID (the other would only repeat the work).
            if self.peer_id < peer and self._worth_syncing(peer):
                self._ask_sync(peer)

    def _worth_syncing(self, peer: str) -> bool:
        """Members are; so is anyone while we are not a member ourselves: a joiner learns its invite by sync."""
        return self.ledger.is_member(peer) or not self.ledger.is_member(self.peer_id)

    async def _sync_periodically(self) -> None:
        while True:
            await trio.sleep(self.sync_interval_s * random.uniform(0.8, 1.2))
            peers = sorted(p for p in self.keeper.connected() - self.keeper.blocked if self._worth_syncing(p))
            if peers:
                self._ask_sync(random.choice(peers))

    def _penalise(self, peer: str, why: str) -> None:
        """One point against ``peer`` for invalid data; past the threshold it is banned (never raises)."""
        if peer == self.peer_id or not self.score.penalise(peer):
            return
        self.counters["peers_banned"] += 1
        log.warning(
            "peer %s keeps sending invalid data (last: %s); ignored for %d s", peer, why[:120], self.score.ban_s
        )
        try:
            self._ban_send.send_nowait(peer)
        except trio.WouldBlock:  # a ban storm: the score still refuses them, the disconnect waits
            log.debug("ban queue full: %s stays connected until it next misbehaves", peer)

    async def _enforce_bans(self) -> None:
        """Disconnect each banned peer; its ban lifts in a nursery of this task's own."""
        async with trio.open_nursery() as lifts:
            async for peer in self._ban_receive:
                target = ID.from_base58(peer)
                self.pubsub.add_to_blacklist(target)
                await self.host.disconnect(target)
                lifts.start_soon(self._lift_ban, peer)

    async def _lift_ban(self, peer: str) -> None:
        await trio.sleep(self.score.ban_s)
        if peer not in self.keeper.blocked:  # the user's own ban list outlasts ours
            self.pubsub.remove_from_blacklist(ID.from_base58(peer))

    def _on_connected(self, peer: str) -> None:
        self._since.setdefault(peer, time.time())
        try:
            self._new_peer_send.send_nowait(peer)
        except trio.WouldBlock:
            log.debug("connection burst: %s waits for the periodic sync", peer)

    def _notify(self, records: list[Record], via: str) -> None:
        if self.on_record is None:
            return
        for record in records:
            try:
                self.on_record(record, via)
            except Exception as err:  # an observer's bug must not cost the node a record
                log.warning("on_record failed: %s: %s", type(err).__name__, err)


class _ConnectionEvents(INotifee):
    """Connection events from the network, turned into calls on the swarm (which must not block)."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self.swarm._on_connected(str(conn.muxed_conn.peer_id))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id
        if not network.get_connections(peer):
            self.swarm._since.pop(str(peer), None)
            log.info("disconnected from %s", peer)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        return None


async def _drain(subscription: Any) -> None:
    while True:
        await subscription.get()


def _remote(conn: INetConn) -> list[Any]:
    try:
        return list(conn.get_transport_addresses())
    except Exception:
        return []


def _log_sync(peer: str, report: Any) -> None:
    if report.ok:
        log.info(
            "sync with %s: %d in, %d out, %d rejected, %d round trips",
            peer,
            report.records_received,
            report.records_sent,
            report.rejected,
            report.round_trips,
        )
    else:
        log.info("sync with %s failed: %s", peer, report.reason)
