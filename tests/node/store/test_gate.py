"""Every record enters through the gate: judged once, decided once, and each kind of refusal logged in one line."""

import logging

import pytest

from node.store.gate import LOG_EVERY_S, Gate, RefusalLog
from node.store.intake import FORGED, IMPLAUSIBLE, OVERSIZED, UNSIGNED, RejectedRecord
from node.store.members import NON_MEMBER, OVER_QUOTA, OVER_RATE, Limits, Refused
from protocol import canonical
from protocol.records import MAX_RECORD_BYTES
from tests.node.store.test_intake import ELSEWHERE
from tests.node.store.test_ledger import T0, result
from tests.node.store.test_ledger_roster import INVITES, MEMBER, SYBIL, opened

ALLOWED = 5  # records of the member's a case lets in before the bad ones (the limits cases)
FLOOD = 30  # bad records of each kind: half by the batch path (sync, the CLI), half one by one (gossip)


def _unsigned(n: int) -> bytes:
    payload, _signature = canonical.unpack(result(MEMBER, T0 + n, seed=n).raw, MAX_RECORD_BYTES)
    return canonical.pack([payload, b""])


def _forged(n: int) -> bytes:
    raw = bytearray(result(MEMBER, T0 + n, seed=n).raw)
    raw[-1] ^= 1  # the last byte belongs to the signature
    return bytes(raw)


def _members_flood(count: int) -> list[bytes]:
    return [result(MEMBER, T0 + n, seed=n).raw for n in range(count)]  # all in one minute of timestamps


def _case(kind: str) -> tuple[Limits, list[bytes], list[bytes]]:
    """(the gate's limits, records it takes, FLOOD records of ``kind`` it refuses)."""
    if kind == OVER_RATE:
        raws = _members_flood(ALLOWED + FLOOD)
        return Limits(records_per_window=ALLOWED), raws[:ALLOWED], raws[ALLOWED:]
    if kind == OVER_QUOTA:
        raws = _members_flood(ALLOWED + FLOOD)
        return Limits(bytes_per_day=sum(map(len, raws[:ALLOWED]))), raws[:ALLOWED], raws[ALLOWED:]
    make = {
        UNSIGNED: _unsigned,
        FORGED: _forged,
        IMPLAUSIBLE: lambda n: result(MEMBER, T0 + n, seed=n, track=ELSEWHERE).raw,
        OVERSIZED: lambda n: bytes([n]) * (MAX_RECORD_BYTES + 1),
        NON_MEMBER: lambda n: result(SYBIL, T0 + n, seed=n).raw,
    }[kind]
    return Limits(), [], [make(n) for n in range(FLOOD)]


@pytest.mark.parametrize("kind", [UNSIGNED, FORGED, NON_MEMBER, OVER_QUOTA, OVER_RATE, IMPLAUSIBLE, OVERSIZED])
def test_each_bad_kind_is_refused_on_every_path_with_one_log_line(tmp_path, caplog, kind):
    ledger = opened(tmp_path, "l")
    ledger.add_many(record.raw for record in INVITES)
    limits, taken, bad = _case(kind)
    gate = Gate(ledger, workers=1, limits=limits)
    caplog.set_level(logging.INFO, logger="arnode.gate")
    by_batch, one_by_one = bad[: FLOOD // 2], bad[FLOOD // 2 :]

    report = gate.add_many(taken + by_batch, now_ms=T0 + 10_000)
    for raw in one_by_one:  # what gossip's validator does with each message
        with pytest.raises((RejectedRecord, Refused)):
            gate.admit(raw, T0 + 10_000, source="gossip from a test peer")

    assert len(report.added) == len(taken) and len(ledger) == len(INVITES) + len(taken)
    assert len(report.rejected) + len(report.refused) == len(by_batch)
    assert gate.refusals == {kind: FLOOD}
    lines = [entry.getMessage() for entry in caplog.records if entry.name == "arnode.gate"]
    assert len(lines) == 1 and f"refused a record, {kind}: " in lines[0] and "\n" not in lines[0]


def test_the_log_line_after_a_quiet_minute_counts_what_came_since(caplog):
    now = [0.0]
    log = RefusalLog(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="arnode.gate")
    for _ in range(10):
        log.note(FORGED, "bad signature", "a peer")
    now[0] = LOG_EVERY_S
    log.note(FORGED, "bad signature", "a peer")
    lines = [entry.getMessage() for entry in caplog.records if entry.name == "arnode.gate"]
    assert len(lines) == 2 and "9 more forged records since the last line" in lines[1]


def test_our_own_records_meet_the_same_decision(tmp_path):
    ledger = opened(tmp_path, "l")
    gate = Gate(ledger, workers=1)
    with pytest.raises(Refused, match="is not a member"):
        gate.add_record(result(MEMBER, T0))  # before the invite arrives, our results count nowhere
    with pytest.raises(RejectedRecord, match="not this swarm's"):
        gate.add_record(result(MEMBER, T0, track=ELSEWHERE))
    gate.add_many(record.raw for record in INVITES)
    assert gate.add_record(result(MEMBER, T0)) is not None and gate.add_record(result(MEMBER, T0)) is None


def test_gossip_checks_held_and_membership_once_and_stores_what_it_admitted(tmp_path):
    ledger = opened(tmp_path, "l")
    gate = Gate(ledger, workers=1, limits=Limits(records_per_window=2))
    gate.add_many(record.raw for record in INVITES)
    first, second, third = _members_flood(3)
    admitted = gate.admit(first, T0, source="gossip")
    assert admitted is not None
    assert gate.admit(first, T0, source="gossip") is None  # admitted, not stored yet: not judged again
    gate.add(second)  # sync stored this one meanwhile
    with pytest.raises(Refused, match="rate"):  # the share counts what gossip admitted, before it is stored
        gate.admit(third, T0, source="gossip")
    assert gate.store_admitted([admitted, admitted]) == [admitted]
    assert gate.admit(first, T0, source="gossip") is None and len(ledger) == len(INVITES) + 2
