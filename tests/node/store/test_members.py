"""A member's share is counted over its records' own timestamps, from what the ledger holds."""

import pytest

from node.store.members import DAY_MS, OVER_QUOTA, OVER_RATE, WINDOW_MS, Limits, Refused, Usage
from tests.node.store.test_ledger import T0, person, result
from tests.node.store.test_ledger_roster import INVITES, MEMBER, opened

LIMITS = Limits(records_per_window=3, bytes_per_day=10**9)


def test_each_minute_of_a_members_timestamps_holds_its_rate_and_no_more():
    usage = Usage(lambda: [])
    minute = T0 - T0 % WINDOW_MS
    for n in range(3):
        usage.charge(result(MEMBER, minute + n, seed=n), LIMITS)
    with pytest.raises(Refused) as refused:
        usage.charge(result(MEMBER, minute + WINDOW_MS - 1, seed=9), LIMITS)
    assert refused.value.kind == OVER_RATE
    usage.charge(result(MEMBER, minute + WINDOW_MS, seed=10), LIMITS)  # the next minute has room
    usage.charge(result(person(3), minute, seed=11), LIMITS)  # and so has every other author


def test_a_day_of_a_members_timestamps_holds_its_bytes_and_a_refusal_uses_none():
    records = [result(MEMBER, T0 + n * WINDOW_MS, seed=n) for n in range(4)]
    limits = Limits(bytes_per_day=sum(len(record.raw) for record in records[:2]) + 1)
    usage = Usage(lambda: [])
    usage.charge(records[0], limits)
    usage.charge(records[1], limits)
    for record in records[2:]:
        with pytest.raises(Refused) as refused:
            usage.charge(record, limits)
        assert refused.value.kind == OVER_QUOTA
    usage.charge(result(MEMBER, T0 + DAY_MS, seed=9), limits)


def test_the_share_starts_from_the_held_set_and_is_read_again_after_forget(tmp_path):
    ledger = opened(tmp_path, "l")
    ledger.add_many(record.raw for record in INVITES)
    minute = T0 - T0 % WINDOW_MS
    ledger.add_many(result(MEMBER, minute + n, seed=n).raw for n in range(2))
    usage = ledger.usage
    usage.charge(result(MEMBER, minute + 5, seed=5), LIMITS)  # counted, never stored: a rolled-back batch
    with pytest.raises(Refused):
        usage.charge(result(MEMBER, minute + 6, seed=6), LIMITS)
    usage.forget()
    usage.charge(result(MEMBER, minute + 6, seed=6), LIMITS)  # what the set holds: two, so room for one
