"""The ledger takes only members' records, and a revocation hides a member's records from every view."""

import itertools
from contextlib import suppress
from dataclasses import replace

import pytest

from node.store.gate import Gate
from node.store.ledger import Ledger
from node.store.members import DAY_MS, Limits
from protocol.roster import NotAdmitted
from tests.node.store.test_ledger import POLICY, T0, hypothesis, person, result
from tests.protocol.test_roster import invite, revoke

FOUNDER, MEMBER, HOSTILE, SYBIL = person(10), person(11), person(12), person(13)
ROSTER_POLICY = replace(POLICY, admins=(FOUNDER.peer_id,), min_runs=1)
INVITES = [invite(FOUNDER, MEMBER, ts=T0), invite(FOUNDER, HOSTILE, ts=T0)]
HONEST = [result(MEMBER, T0 + 1, seed=1, bpb=1.0), result(FOUNDER, T0 + 2, seed=2, bpb=1.001)]
FORGED = [result(HOSTILE, T0 + n, {"depth": 12}, seed=n, bpb=0.5) for n in (3, 4)]  # a discovery and a re-run
REVOCATION = revoke(FOUNDER, HOSTILE, ts=T0 + 10)


def opened(tmp_path, name: str, policy=ROSTER_POLICY) -> Ledger:
    return Ledger.open(tmp_path / f"{name}.sqlite", policy)


def test_a_non_members_record_is_refused_with_one_line(tmp_path):
    ledger = opened(tmp_path, "l")
    with pytest.raises(NotAdmitted, match="is not a member"):
        ledger.add(result(SYBIL, T0, seed=9).raw)
    report = ledger.add_many([result(SYBIL, T0 + 1).raw, *(r.raw for r in INVITES + HONEST)])
    assert len(report.added) == 4 and len(report.refused) == 1 and not report.rejected
    assert SYBIL.peer_id not in {run.author for run in ledger.runs(HONEST[0].track.key)}


def test_a_batch_may_carry_invites_after_the_records_they_admit(tmp_path):
    ledger = opened(tmp_path, "l")
    report = ledger.add_many(r.raw for r in reversed(INVITES + HONEST))
    assert len(report.added) == 4 and not report.refused


def test_revocation_in_any_arrival_order_gives_the_same_views_and_sync_keys(tmp_path):
    records = INVITES + HONEST + FORGED + [REVOCATION]
    outcomes = set()
    for number, order in enumerate(itertools.permutations(records[3:])):  # the tail: forged, honest, revocation
        ledger = opened(tmp_path, f"order{number}")
        for record in records[:3] + list(order):
            with suppress(NotAdmitted):  # the revocation came first: the hostile record is refused, not stored
                ledger.add(record.raw)
        best = ledger.best()[HONEST[0].track.key]
        outcomes.add((best.config, tuple(ledger.keys()), ledger.view(HONEST[0].track.key).sigma))
        ledger.close()
    assert len(outcomes) == 1
    assert next(iter(outcomes))[0] == HONEST[0].body["config"]


def test_the_previous_best_returns_when_its_challenger_is_revoked(tmp_path):
    ledger = opened(tmp_path, "l")
    ledger.add_many(r.raw for r in INVITES + HONEST + FORGED)
    key = HONEST[0].track.key
    assert ledger.best()[key].config == FORGED[0].body["config"]
    ledger.add(REVOCATION.raw)
    assert ledger.best()[key].config == HONEST[0].body["config"]
    held_ids = [record_id for _, record_id in ledger.keys()]  # noqa: SIM118 (a list of keys, not a dict)
    assert FORGED[0].id not in held_ids
    assert all(record.author != HOSTILE.peer_id for record in ledger.records())


def test_a_revoked_members_hypotheses_and_answers_vanish_from_the_hypotheses_view(tmp_path):
    ledger = opened(tmp_path, "l")
    honest_idea = hypothesis(MEMBER, T0 + 5, {"depth": 12})  # the hostile member's discovery answers it
    hostile_idea = hypothesis(HOSTILE, T0 + 6, {"matrix_lr": 0.05})
    ledger.add_many(r.raw for r in INVITES + HONEST + FORGED + [honest_idea, hostile_idea])
    assert [(s.record.id, s.answered) for s in ledger.hypotheses()] == [
        (honest_idea.id, True),
        (hostile_idea.id, False),
    ]
    ledger.add(REVOCATION.raw)
    assert [(s.record.id, s.answered) for s in ledger.hypotheses()] == [(honest_idea.id, False)]


def test_a_member_over_its_daily_quota_is_refused(tmp_path):
    ledger = opened(tmp_path, "l")
    ledger.add_many(r.raw for r in INVITES)
    gate = Gate(ledger, limits=Limits(bytes_per_day=3 * len(HONEST[0].raw)))
    flood = [result(MEMBER, T0 + n, seed=n) for n in range(5)]
    report = gate.add_many(r.raw for r in flood)
    assert (
        len(report.added) == 3 and len(report.refused) == 2 and all("quota" in why for why in report.refused.values())
    )
    tomorrow = result(MEMBER, T0 + DAY_MS, seed=99)
    assert gate.add(tomorrow.raw) is not None


def test_the_shared_sync_index_follows_new_records_and_roster_changes(tmp_path):
    ledger = opened(tmp_path, "l")
    ledger.add_many(r.raw for r in INVITES + HONEST + FORGED)
    assert len(ledger.range_index()) == 6
    ledger.add(REVOCATION.raw)
    assert len(ledger.range_index()) == 5  # the revocation in, both hostile records out
    indexed = {record_id for _, record_id in ledger.range_index().keys}
    assert REVOCATION.id in indexed and not indexed & {record.id for record in FORGED}
