"""Replicas that sync in any order, with duplicates and partitions, converge on one set and one best."""

import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.store.ledger import Ledger
from protocol.acceptance import assess
from protocol.config import apply
from tests.node.net.test_sync import ids, session
from tests.node.store.test_ledger import DEFAULT, POLICY, T0, person, result

# A pool with a real best to agree on: verified default runs, two verified children that beat it
# (the better one should win), a candidate, crashes, and many same-timestamp records.
_DEEPER, _WIDER = {"depth": 12}, {"aspect_ratio": 80}
POOL = (
    [result(person(n % 4), T0 + n // 4, bpb=1.0 + n / 1000, seed=n) for n in range(8)]
    + [result(person(n % 4), T0 + 10 + n // 4, _DEEPER, bpb=0.95 + n / 2000, seed=n) for n in range(6)]
    + [result(person(n % 4), T0 + 20 + n // 4, _WIDER, bpb=0.97 + n / 2000, seed=n) for n in range(6)]
    + [
        result(person(n % 4), T0 + 30, {"matrix_lr": 0.05}, base=apply(DEFAULT, _DEEPER), bpb=0.9 + n / 1000, seed=n)
        for n in range(2)
    ]
    + [result(person(n % 4), T0 + 40 + n, {"head_dim": 64}, bpb=None, seed=n) for n in range(4)]
    + [result(person(n % 4), T0 + 50 + n // 8, bpb=1.0 + n / 1000, seed=100 + n) for n in range(40)]
)
BEST = {key: view.best for key, view in assess(POOL, POLICY).items()}


@st.composite
def histories(draw):
    """Replicas' starting sets (overlapping at random) and a schedule of sessions under partitions."""
    count = draw(st.integers(5, 20))
    holdings = [set() for _ in range(count)]
    for index in range(len(POOL)):  # every record starts somewhere, many in several places
        for replica in draw(st.sets(st.integers(0, count - 1), min_size=1, max_size=3)):
            holdings[replica].add(index)
    schedule = []
    for _ in range(draw(st.integers(1, 3))):  # phases, each with its own partition
        side = draw(st.lists(st.integers(0, 2), min_size=count, max_size=count))
        pairs = st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)).filter(lambda p: p[0] != p[1])
        schedule += [pair for pair in draw(st.lists(pairs, max_size=12)) if side[pair[0]] == side[pair[1]]]
    return holdings, schedule


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories())
def test_replicas_converge_on_the_same_set_and_best(history):
    holdings, schedule = history
    count = len(holdings)
    with tempfile.TemporaryDirectory() as directory:
        replicas = [Ledger.open(Path(directory) / f"{n}.sqlite", POLICY) for n in range(count)]
        for replica, held in zip(replicas, holdings, strict=True):
            replica.add_many(POOL[index].raw for index in sorted(held, reverse=True))
        # heal: a sweep along the line and back again reaches everyone, after the partitioned phases
        sweep = [(n, n + 1) for n in range(count - 1)] + [(n + 1, n) for n in reversed(range(count - 1))]
        for left, right in schedule + sweep:
            before = ids(replicas[left]) | ids(replicas[right])
            mine, theirs = trio.run(session, replicas[left], replicas[right])
            assert mine.ok and theirs.ok, (mine.reason, theirs.reason)
            assert ids(replicas[left]) == ids(replicas[right]) == before  # each session yields the union
        everything = {record.id for record in POOL}
        for replica in replicas:
            assert ids(replica) == everything
            assert replica.best() == BEST
            replica.close()
