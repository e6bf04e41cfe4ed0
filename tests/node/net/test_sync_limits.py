"""A member's share holds by sync as by gossip, and a fresh node catching up on honest history is never throttled."""

import trio
import trio.testing

from node.net.sync import reconcile
from node.store.gate import Gate
from node.store.members import WINDOW_MS, Limits, Refused
from tests.node.net.test_sync import ids
from tests.node.store.test_ledger import POLICY, T0, person, result  # POLICY: an open swarm, no invites
from tests.node.store.test_ledger_roster import INVITES, MEMBER, opened

RATE = 10  # the receivers' records per member per minute
MINUTE = T0 - T0 % WINDOW_MS
FLOOD = [result(MEMBER, MINUTE + n, seed=n) for n in range(4 * RATE)]  # one member, one minute of timestamps


async def sync_into(source_gate: Gate, target_gate: Gate):
    """One session between two gates' ledgers; (source's report, target's report)."""
    a, b = trio.testing.memory_stream_pair()
    reports = {}

    async def run(name, stream, gate, initiator):
        reports[name] = await reconcile(stream, gate, initiator=initiator, deadline_s=30, peer=name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "source", a, source_gate, True)
        nursery.start_soon(run, "target", b, target_gate, False)
    return reports["source"], reports["target"]


def test_a_member_over_its_rate_is_cut_alike_by_sync_and_by_gossip(tmp_path):
    source = opened(tmp_path, "source")
    source.add_many(record.raw for record in INVITES + FLOOD)  # the flooding member's own node took them all
    by_sync, by_gossip = opened(tmp_path, "by_sync"), opened(tmp_path, "by_gossip")
    for ledger in (by_sync, by_gossip):
        ledger.add_many(record.raw for record in INVITES)

    sync_gate = Gate(by_sync, workers=1, limits=Limits(records_per_window=RATE))
    mine, theirs = trio.run(sync_into, source.gate(), sync_gate)
    gossip_gate = Gate(by_gossip, workers=1, limits=Limits(records_per_window=RATE))
    admitted = []
    for record in FLOOD:  # what gossip's validator does with each message
        try:
            admitted.append(gossip_gate.admit(record.raw, MINUTE + WINDOW_MS, source="gossip"))
        except Refused:  # not forwarded
            continue
    gossip_gate.store_admitted(admitted)

    assert mine.ok and theirs.ok and theirs.refused == len(FLOOD) - RATE
    flood = {record.id for record in FLOOD}
    assert len(ids(by_sync) & flood) == len(ids(by_gossip) & flood) == RATE
    assert sync_gate.refusals == gossip_gate.refusals == {"over rate": len(FLOOD) - RATE}


def test_a_fresh_node_catching_up_on_honest_history_is_never_throttled(tmp_path):
    # five members, each at its full rate for an hour of timestamps: all of it arrives in one session
    history = [
        result(person(n % 5), MINUTE + (n // (5 * RATE)) * WINDOW_MS + n % (5 * RATE), seed=n)
        for n in range(60 * 5 * RATE)
    ]
    source = Gate(opened(tmp_path, "source", policy=POLICY), workers=1)
    source.add_many(record.raw for record in history)
    fresh = Gate(opened(tmp_path, "fresh", policy=POLICY), workers=1, limits=Limits(records_per_window=RATE))
    mine, theirs = trio.run(sync_into, source, fresh)
    assert mine.ok and theirs.ok and theirs.records_received == len(history) and theirs.refused == 0
    assert ids(fresh.ledger) == {record.id for record in history}
