"""Two honest ledgers that sync end with the union of their sets, cheaply when they already agree."""

import random
from pathlib import Path

import trio
import trio.testing

from node.net.sync import LEAF, reconcile
from node.store.ledger import Ledger
from tests.node.store.test_ledger import POLICY, T0, person, result


def signed(count: int, start: int = 0) -> list:
    """``count`` distinct results from a few authors, several sharing each timestamp."""
    return [result(person(n % 5), T0 + n // 3, seed=n) for n in range(start, start + count)]


def ids(ledger: Ledger) -> set[bytes]:
    return {record_id for _, record_id in ledger.keys()}  # noqa: SIM118 - keys() is the ledger's own method


async def session(left: Ledger, right: Ledger, stream_pair=trio.testing.memory_stream_pair):
    """Both ends of one sync session at once; (initiator's report, responder's report)."""
    a, b = stream_pair()
    reports = {}

    async def run(name, stream, ledger, initiator):
        reports[name] = await reconcile(stream, ledger.gate(), initiator=initiator, deadline_s=30)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "initiator", a, left, True)
        nursery.start_soon(run, "responder", b, right, False)
    return reports["initiator"], reports["responder"]


def open_pair(tmp_path: Path, left_records: list, right_records: list) -> tuple[Ledger, Ledger]:
    left, right = Ledger.open(tmp_path / "left.sqlite", POLICY), Ledger.open(tmp_path / "right.sqlite", POLICY)
    left.add_many(r.raw for r in left_records)
    right.add_many(r.raw for r in right_records)
    return left, right


def test_sync_gives_both_sides_the_union(tmp_path):
    records = signed(400)
    rng = random.Random(1)
    left_part = [r for r in records if rng.random() < 0.7]
    right_part = [r for r in records if rng.random() < 0.7]
    left, right = open_pair(tmp_path, left_part, right_part)
    union = {r.id for r in left_part} | {r.id for r in right_part}
    mine, theirs = trio.run(session, left, right)
    assert mine.ok and theirs.ok, (mine.reason, theirs.reason)
    assert ids(left) == ids(right) == union
    assert mine.records_received == theirs.records_sent == len(union) - len(left_part)
    assert theirs.records_received == mine.records_sent == len(union) - len(right_part)
    assert mine.bytes_sent == theirs.bytes_received and mine.bytes_received == theirs.bytes_sent


def test_equal_sets_settle_in_one_round_trip_under_a_kilobyte(tmp_path):
    records = signed(300)
    left, right = open_pair(tmp_path, records, list(reversed(records)))
    mine, theirs = trio.run(session, left, right)
    assert mine.ok and theirs.ok
    assert mine.round_trips == 1 and mine.bytes_sent + mine.bytes_received < 1024
    assert mine.records_sent == mine.records_received == 0


def test_a_fresh_node_catches_up_on_the_whole_history(tmp_path):
    records = signed(500)
    left, right = open_pair(tmp_path, [], records)
    mine, _ = trio.run(session, left, right)
    assert mine.ok and mine.records_received == 500 and ids(left) == ids(right)
    assert mine.round_trips == 1


def test_a_handful_of_differences_costs_ids_not_records(tmp_path):
    records = signed(600)
    left, right = open_pair(tmp_path, records[:-3], records[3:])
    mine, _ = trio.run(session, left, right)
    assert mine.ok and mine.records_received == 3 and mine.records_sent == 3
    # about log16(n / LEAF) rounds of fingerprints, then ID lists, never the whole set
    assert mine.round_trips <= 4
    assert mine.bytes_sent < 6 * 3 * 800 + 16 * 4 * 60 + 3 * LEAF * 34


def test_sync_needs_no_buffering_in_the_stream(tmp_path):
    # a lockstep stream blocks every write until the peer reads it: a protocol that waits on
    # the wrong side deadlocks here
    records = signed(300)
    left, right = open_pair(tmp_path, records[:200], records[100:])
    mine, theirs = trio.run(session, left, right, trio.testing.lockstep_stream_pair)
    assert mine.ok and theirs.ok and ids(left) == ids(right) == {r.id for r in records}
