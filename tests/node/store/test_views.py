"""A ledger's cached views always equal the acceptance rule run from scratch on the set it holds,
whatever the arrival order, duplicates and revocations."""

import gc
import tempfile
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.store.ledger import Ledger
from node.store.views import collector_paused
from protocol.acceptance import assess
from protocol.config import apply
from protocol.roster import NotAdmitted
from tests.node.store.test_ledger import DEFAULT, POLICY, T0, TRACK, person, result
from tests.protocol.test_roster import invite, revoke

FOUNDER, MEMBERS = person(20), [person(21), person(22), person(23)]
VIEW_POLICY = replace(POLICY, admins=(FOUNDER.peer_id,), min_runs=2, min_authors=2, sigma_prior_df=4, clip_floors=3)
# a chain of configs, each one depth step from its parent, and a side branch off the default
CHAIN = [DEFAULT]
for depth in (10, 12, 14, 16):
    CHAIN.append(apply(CHAIN[-1], {"depth": depth}))
SIDE_DIFF = {"matrix_lr": 0.03}


def _history() -> list:
    """Results on every config of the chain and the branch (crashes and one wild value among them),
    by the founder and three members, with the members' invites."""
    records = [invite(FOUNDER, member, ts=T0 + n) for n, member in enumerate(MEMBERS)]
    authors = [FOUNDER, *MEMBERS]
    values = [1.0, 0.998, 1.003, 0.99, 0.985, 0.992, 0.97, 0.975, 0.99, 1.01, 0.96, 0.968, 5.0, 0.962, 0.97]
    for n, value in enumerate(values):
        step = 1 + n % (len(CHAIN) - 1)
        base, diff = CHAIN[step - 1], {"depth": CHAIN[step]["depth"]}
        records.append(result(authors[(n // 4) % 4], T0 + 10 + n, diff, base=base, bpb=value, seed=n))
    records.append(result(MEMBERS[0], T0 + 40, bpb=0.999, seed=40))  # the default, again
    records.append(result(MEMBERS[1], T0 + 41, bpb=None, seed=41))  # a crash
    records += [result(authors[n], T0 + 50 + n, SIDE_DIFF, bpb=0.98 + n / 1000, seed=50 + n) for n in range(3)]
    return records


HISTORY = _history()
REVOCATIONS = [revoke(FOUNDER, MEMBERS[2], ts=T0 + 30), revoke(FOUNDER, MEMBERS[0], ts=T0 + 60)]
RECORDS = HISTORY + REVOCATIONS
INVITES = len(MEMBERS)


def from_scratch(ledger: Ledger):
    """The rule over the results the ledger holds and counts, decoded again from their bytes."""
    return assess(list(ledger.records("result")), VIEW_POLICY).get(TRACK.key)


arrivals = st.lists(st.integers(min_value=INVITES, max_value=len(RECORDS) - 1), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals, st.lists(st.booleans(), min_size=40, max_size=40))
def test_the_cached_view_equals_a_from_scratch_assess_after_every_arrival(order, looks):
    with tempfile.TemporaryDirectory() as directory:
        ledger = Ledger.open(Path(directory) / "ledger.sqlite", VIEW_POLICY)
        try:
            ledger.add_many(r.raw for r in HISTORY[:INVITES])
            for index, look in zip(order, looks, strict=False):
                with suppress(NotAdmitted):  # a revoked member's later records are refused, not stored
                    ledger.add(RECORDS[index].raw)
                if look:  # views read between arrivals fill the caches that later arrivals must update
                    assert ledger.view(TRACK.key) == from_scratch(ledger)
            full = from_scratch(ledger)
            assert ledger.view(TRACK.key) == full
            assert ledger.best() == ({TRACK.key: full.best} if full else {})
        finally:
            ledger.close()


def test_a_revocation_after_a_view_changes_the_view_to_the_rule_without_that_member(tmp_path):
    ledger = Ledger.open(tmp_path / "ledger.sqlite", VIEW_POLICY)
    ledger.add_many(r.raw for r in HISTORY)
    before = ledger.view(TRACK.key)
    ledger.add(REVOCATIONS[0].raw)
    after = ledger.view(TRACK.key)
    assert after == from_scratch(ledger) and after != before
    assert MEMBERS[2].peer_id not in {a for s in after.leaderboard for a in s.contributors}
    ledger.close()


def test_config_resolution_follows_the_set_as_it_grows(tmp_path):
    ledger = Ledger.open(tmp_path / "ledger.sqlite", VIEW_POLICY)
    ledger.add_many(r.raw for r in HISTORY[:INVITES])
    deepest = HISTORY[INVITES + len(CHAIN) - 2]  # the run that reaches the chain's last config
    ledger.add(deepest.raw)
    assert deepest.body["config"] not in {s.config for s in ledger.view(TRACK.key).leaderboard if s.linked}
    ledger.add_many(r.raw for r in HISTORY[INVITES:])
    assert ledger.resolve_config(deepest.body["config"]) == CHAIN[-1]
    ledger.close()


def test_pausing_the_cycle_collector_restores_it_as_it_was_even_after_an_error():
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), collector_paused():
        assert not gc.isenabled()
        _ = 1 / 0
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left off, as the caller had it
    finally:
        gc.enable()
