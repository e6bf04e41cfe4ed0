"""The intake judges a batch the same way inline and on its worker processes, in input order."""

import os
import signal

from node.store.intake import FORGED, IMPLAUSIBLE, MALFORMED, POOL_MIN_RECORDS, Intake
from protocol.track import Track
from tests.node.store.test_ledger import POLICY, T0, person, result

ELSEWHERE = Track("cpu-x1", "seconds", 60, "shakespeare", "bpe8192", 1)


def mixed_batch() -> list[bytes]:
    """Valid records with a forged one, another swarm's, a future one and garbage among them."""
    raws = [result(person(n % 3), T0 + n, seed=n).raw for n in range(POOL_MIN_RECORDS + 40)]
    forged = bytearray(raws[7])
    forged[-1] ^= 1  # the last byte belongs to the signature
    raws[7] = bytes(forged)
    raws[50] = result(person(1), T0 + 50, track=ELSEWHERE).raw
    raws[90] = result(person(2), T0 + 3_600_000).raw
    raws[120] = b"\x93junk"
    return raws


def test_the_worker_pool_and_the_inline_check_agree_record_for_record():
    raws = mixed_batch()
    with Intake(POLICY, workers=1) as inline, Intake(POLICY, workers=2) as pooled:
        expected = inline.admit_many(raws, T0 + len(raws))
        got = pooled.admit_many(raws, T0 + len(raws))
        assert pooled._pool is not None  # the batch was large enough to go to the workers
    assert got == expected
    records, rejected = got
    assert [record.raw for record in records] == [raw for n, raw in enumerate(raws) if n not in (7, 50, 90, 120)]
    assert len(rejected) == 4
    assert [rejection.kind for rejection in rejected] == [FORGED, IMPLAUSIBLE, IMPLAUSIBLE, MALFORMED]
    assert "signature" in rejected[0].reason and "not this swarm's" in rejected[1].reason
    assert "future" in rejected[2].reason


def test_a_small_batch_is_judged_inline_without_starting_workers():
    with Intake(POLICY, workers=2) as intake:
        records, rejected = intake.admit_many(mixed_batch()[:10], T0 + 10)
        assert intake._pool is None
    assert len(records) == 9 and len(rejected) == 1


def test_a_killed_worker_costs_one_batch_its_speed_and_nothing_else():
    raws = mixed_batch()
    with Intake(POLICY, workers=2) as intake:
        expected = intake.admit_many(raws, T0 + len(raws))
        for process in list(intake._pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        assert intake.admit_many(raws, T0 + len(raws)) == expected  # checked here, the broken pool dropped
        assert intake._pool is None
        assert intake.admit_many(raws, T0 + len(raws)) == expected  # and a fresh pool after that
        assert intake._pool is not None


def test_batches_started_together_on_the_workers_keep_their_own_verdicts():
    raws = mixed_batch()
    with Intake(POLICY, workers=1) as inline:
        expected = inline.admit_many(raws[:-1], T0 + len(raws)), inline.admit_many(raws[1:], T0 + len(raws))
    with Intake(POLICY, workers=2) as intake:
        first, second = intake.start(raws[:-1], T0 + len(raws)), intake.start(raws[1:], T0 + len(raws))
        assert intake._pool is not None  # both are large enough for the workers
        assert (first.result(), second.result()) == expected
        first.cancel()  # a verdict already given stays given
        assert first.result() == expected[0]
