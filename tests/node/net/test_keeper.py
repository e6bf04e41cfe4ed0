"""The keeper gives connection slots to members first, on real hosts on 127.0.0.1."""

from contextlib import AsyncExitStack

import multiaddr
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr

from node.net.host import build_host
from node.net.keeper import MAX_GUEST_CONNECTIONS, Keeper
from protocol.identity import Identity

LOCAL = "/ip4/127.0.0.1/tcp/0"
GUESTS = MAX_GUEST_CONNECTIONS + 4  # key holders who are not members, more than the slots they may keep
TARGET_PEERS = 2


def test_a_flood_of_non_member_connections_never_keeps_members_from_being_dialled():
    connected_members, guests_left = trio.run(_flood_then_learn_members)
    assert connected_members == 2
    assert guests_left <= MAX_GUEST_CONNECTIONS


async def _flood_then_learn_members() -> tuple[int, int]:
    psk = bytes(32)
    node, *members = [build_host(Identity.generate(), psk, LOCAL) for _ in range(3)]
    guests = [build_host(Identity.generate(), psk, LOCAL) for _ in range(GUESTS)]
    member_ids = {str(host.get_id()) for host in (node, *members)}
    keeper = Keeper(node, target_peers=TARGET_PEERS, tick_s=0.1, is_member=member_ids.__contains__)
    async with AsyncExitStack() as stack:
        for host in (node, *members, *guests):
            await stack.enter_async_context(host.run([multiaddr.Multiaddr(LOCAL)]))
        with trio.fail_after(30):
            for guest in guests:  # the flood arrives first: more connections than target_peers
                await guest.connect(info_from_p2p_addr(node.get_addrs()[0]))
        for member in members:
            keeper.learn(str(member.get_id()), [str(addr).rsplit("/p2p/", 1)[0] for addr in member.get_addrs()])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keeper.run)
            with trio.move_on_after(30):
                while not _settled(keeper, member_ids):
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
        connected = keeper.connected()
        return len(connected & member_ids), len(connected - member_ids)


def _settled(keeper: Keeper, member_ids: set[str]) -> bool:
    connected = keeper.connected()
    return len(connected & member_ids) == 2 and len(connected - member_ids) <= MAX_GUEST_CONNECTIONS
