"""The keeper: keeps this node connected to the peers it knows, for as long as the node runs.

Bootstrap peers are redialled forever; peers learned from signed address announcements are
dialled while we have fewer than ``target_peers`` connections to members, and only while they are members,
at the addresses they signed, of the ordinary kinds (see ``ordinary_addr``) unless the node's
settings allow any. Each failed dial doubles that
peer's wait (with jitter, capped), so a dead peer costs a dial every ``max_backoff_s`` and a peer
that comes back is found again within that time.

Connection slots go to members first: connections from key holders who are not members never
count towards ``target_peers``, and once this node is a member itself it keeps at most
``MAX_GUEST_CONNECTIONS`` of them (a joiner waiting for its invite needs one; a flood needs none).
"""

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from node.net import libp2p_patches
from node.net.addresses import ordinary_addr
from node.net.bootstrap import parse_peer_addr

log = logging.getLogger("arnode.keeper")

MAX_LEARNED_PEERS = 256
MAX_ADDRS_PER_PEER = 4
MAX_GUEST_CONNECTIONS = 4  # connections from key holders who are not members, once we are one


@dataclass
class KnownPeer:
    addrs: list[str] = field(default_factory=list)  # transport addresses, newest first
    pinned: bool = False  # from the bootstrap list: always redialled
    failures: int = 0
    next_dial: float = 0.0
    dialing: bool = False


class Keeper:
    def __init__(
        self,
        host: IHost,
        *,
        target_peers: int = 8,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        dial_timeout_s: float = 5.0,
        tick_s: float = 0.5,
        is_member: Callable[[str], bool] = lambda peer_id: True,
        is_banned: Callable[[str], bool] = lambda peer_id: False,
        dial_any_address: bool = False,
    ) -> None:
        self.host = host
        self.own_id = str(host.get_id())
        self.target_peers = target_peers
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.dial_timeout_s = dial_timeout_s
        self.tick_s = tick_s
        self.is_member = is_member
        self.is_banned = is_banned
        self.dial_any_address = dial_any_address
        self.known: dict[str, KnownPeer] = {}
        self.blocked: set[str] = set()

    def add_bootstrap(self, full_addr: str) -> None:
        peer_id, addr = parse_peer_addr(full_addr)
        self._remember(peer_id, [addr], pinned=True)

    def learn(self, peer_id: str, addrs: list[str]) -> None:
        """Addresses a peer announced for itself (already verified as signed by it)."""
        if not self.is_member(peer_id):
            return
        usable = []
        for addr in addrs:
            try:
                transport = parse_peer_addr(f"{addr}/p2p/{peer_id}")[1]
            except ValueError:
                continue
            if self.dial_any_address or ordinary_addr(transport):
                usable.append(transport)
        if usable:
            self._remember(peer_id, usable, pinned=False)

    def connected(self) -> set[str]:
        return {str(peer) for peer in self.host.get_connected_peers()}

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                for peer_id in self._due(time.monotonic()):
                    self.known[peer_id].dialing = True
                    nursery.start_soon(self._dial, peer_id)
                for peer_id in self._surplus_guests():
                    nursery.start_soon(self._drop, peer_id)
                await trio.sleep(self.tick_s)

    def _remember(self, peer_id: str, addrs: list[str], pinned: bool) -> None:
        if peer_id == self.own_id:
            return
        peer = self.known.get(peer_id)
        if peer is None:
            if not pinned and len(self.known) >= MAX_LEARNED_PEERS and not self._forget_one():
                return
            peer = self.known[peer_id] = KnownPeer()
        peer.pinned = peer.pinned or pinned
        fresh = [addr for addr in addrs if addr not in peer.addrs]
        if fresh:
            peer.addrs = (fresh + peer.addrs)[:MAX_ADDRS_PER_PEER]
            peer.next_dial = min(peer.next_dial, time.monotonic())  # a new address is worth a try now

    def _forget_one(self) -> bool:
        learned = [peer_id for peer_id, peer in self.known.items() if not peer.pinned and not peer.dialing]
        if not learned:
            return False
        del self.known[max(learned, key=lambda peer_id: self.known[peer_id].failures)]
        return True

    def _surplus_guests(self) -> list[str]:
        """Non-member connections past MAX_GUEST_CONNECTIONS, while we are a member (a joiner keeps all)."""
        if not self.is_member(self.own_id):
            return []
        guests = sorted(
            peer_id
            for peer_id in self.connected()
            if not self.is_member(peer_id) and not (peer_id in self.known and self.known[peer_id].pinned)
        )
        return random.sample(guests, len(guests) - MAX_GUEST_CONNECTIONS) if len(guests) > MAX_GUEST_CONNECTIONS else []

    async def _drop(self, peer_id: str) -> None:
        log.debug("dropping %s: not a member, and guest slots are full", peer_id)
        await self.host.disconnect(ID.from_base58(peer_id))

    def _due(self, now: float) -> list[str]:
        connected = self.connected()
        due = []
        room = self.target_peers - sum(1 for peer_id in connected if self.is_member(peer_id))
        for peer_id, peer in list(self.known.items()):
            if not peer.pinned and not peer.dialing and not self.is_member(peer_id):
                del self.known[peer_id]  # revoked since it announced itself
                continue
            if peer_id in connected:
                peer.failures, peer.next_dial = 0, 0.0
                continue
            if peer.dialing or peer.next_dial > now or peer_id in self.blocked or self.is_banned(peer_id):
                continue
            if peer.pinned or room > 0:
                due.append(peer_id)
                room -= 0 if peer.pinned else 1
        return due

    async def _dial(self, peer_id: str) -> None:
        peer = self.known[peer_id]
        try:
            ok = await self._connect(peer_id, list(peer.addrs))
        finally:
            peer.dialing = False
        if ok:
            peer.failures, peer.next_dial = 0, 0.0
            log.info("connected to %s", peer_id)
            return
        peer.failures += 1
        wait = min(self.max_backoff_s, self.min_backoff_s * 2 ** (peer.failures - 1))
        peer.next_dial = time.monotonic() + wait * random.uniform(0.8, 1.2)
        log.debug("dial %s failed %d times; next in %.1f s", peer_id, peer.failures, wait)

    async def _connect(self, peer_id: str, addrs: list[str]) -> bool:
        target = ID.from_base58(peer_id)
        libp2p_patches.forget_failed_dial(self.host, target)
        info = PeerInfo(target, [multiaddr.Multiaddr(addr) for addr in addrs])
        with trio.move_on_after(self.dial_timeout_s):
            try:
                await self.host.connect(info)
            except Exception as err:  # refused, reset, wrong key, bad address: all mean "not now"
                log.debug("dial %s: %s: %s", peer_id, type(err).__name__, str(err)[:200])
                return False
            return True
        log.debug("dial %s timed out after %.1f s", peer_id, self.dial_timeout_s)
        return False
