"""The roster is a pure function of the founders and the roster records: any order gives the same members."""

import itertools

import pytest

from protocol.errors import RecordError
from protocol.identity import Identity
from protocol.records import decode, sign
from protocol.roster import NotAdmitted, build_roster
from protocol.track import Track

T0 = 1_700_000_000_000
TRACK = Track("cpu-x1", "seconds", 300, "shakespeare", "bpe8192", 1)


def person(n: int) -> Identity:
    return Identity.from_seed(bytes([n + 50]) * 32)


FOUNDER, ADMIN, OTHER_ADMIN, MEMBER, SYBIL = (person(n) for n in range(5))


def invite(by: Identity, who: Identity, admin: bool = False, ts: int = T0):
    return sign(by, "membership", {"member": who.peer_id, "admin": admin}, ts)


def revoke(by: Identity, who: Identity, ts: int = T0 + 1):
    return sign(by, "revocation", {"member": who.peer_id, "reason": "test"}, ts)


def roster(*records):
    return build_roster([FOUNDER.peer_id], records)


def test_a_founder_alone_is_admin_and_member_and_strangers_are_neither():
    solo = roster()
    assert solo.admins == solo.members == {FOUNDER.peer_id}
    assert not solo.is_member(SYBIL.peer_id)


def test_invited_members_count_and_their_invites_do_not_unless_they_are_admins():
    found = roster(invite(FOUNDER, MEMBER), invite(MEMBER, SYBIL), invite(FOUNDER, ADMIN, admin=True))
    assert found.members == {FOUNDER.peer_id, MEMBER.peer_id, ADMIN.peer_id}
    assert found.admins == {FOUNDER.peer_id, ADMIN.peer_id}
    with pytest.raises(NotAdmitted, match="not an admin"):
        found.check(invite(MEMBER, SYBIL))


def test_revoking_an_admin_voids_everything_it_signed():
    records = [invite(FOUNDER, ADMIN, admin=True), invite(ADMIN, SYBIL), revoke(ADMIN, MEMBER), invite(FOUNDER, MEMBER)]
    assert SYBIL.peer_id in roster(*records).members and MEMBER.peer_id in roster(*records).revoked
    after = roster(*records, revoke(FOUNDER, ADMIN))
    assert after.members == {FOUNDER.peer_id, MEMBER.peer_id}
    assert ADMIN.peer_id in after.revoked


def test_admins_of_one_rank_cannot_remove_each_other_and_founders_stay():
    records = [
        invite(FOUNDER, ADMIN, admin=True),
        invite(FOUNDER, OTHER_ADMIN, admin=True),
        revoke(ADMIN, OTHER_ADMIN),
        revoke(OTHER_ADMIN, ADMIN),
        revoke(ADMIN, FOUNDER),
    ]
    assert roster(*records).admins == {FOUNDER.peer_id, ADMIN.peer_id, OTHER_ADMIN.peer_id}


def test_revocation_is_final_for_the_key():
    found = roster(invite(FOUNDER, MEMBER), revoke(FOUNDER, MEMBER), invite(FOUNDER, MEMBER, ts=T0 + 5))
    assert not found.is_member(MEMBER.peer_id)
    with pytest.raises(NotAdmitted, match="was revoked"):
        found.check(
            sign(MEMBER, "hypothesis", {"track": TRACK.to_wire(), "parent": "0" * 64, "diff": {}, "rationale": ""}, T0)
        )


def test_every_order_of_the_records_gives_the_same_roster():
    records = [
        invite(FOUNDER, ADMIN, admin=True),
        invite(ADMIN, OTHER_ADMIN, admin=True),
        invite(OTHER_ADMIN, MEMBER),
        revoke(FOUNDER, ADMIN),
        invite(FOUNDER, SYBIL),
    ]
    rosters = {roster(*order) for order in itertools.permutations(records)}
    assert len(rosters) == 1
    (only,) = rosters
    assert only.members == {FOUNDER.peer_id, SYBIL.peer_id}  # ADMIN's line went with it


def test_a_policy_without_admins_is_an_open_swarm():
    open_swarm = build_roster([], [invite(FOUNDER, MEMBER)])
    assert open_swarm.open and open_swarm.is_member(SYBIL.peer_id)
    with pytest.raises(NotAdmitted):
        open_swarm.check(invite(FOUNDER, MEMBER))


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        ("membership", {"member": "12D3KooWnot", "admin": False}, "peer ID"),
        ("membership", {"member": MEMBER.peer_id, "admin": 1}, "true or false"),
        ("membership", {"member": MEMBER.peer_id}, "lacks admin"),
        ("revocation", {"member": MEMBER.peer_id, "reason": "x", "track": "y"}, "unknown field"),
        ("revocation", {"member": MEMBER.peer_id, "reason": "x" * 201}, "over the limit"),
    ],
)
def test_roster_records_are_decoded_strictly(kind, body, reason):
    with pytest.raises(RecordError, match=reason):
        sign(FOUNDER, kind, body, T0)


def test_a_roster_record_names_no_track_and_round_trips():
    record = invite(FOUNDER, MEMBER, admin=True)
    assert record.track is None and decode(record.raw, T0) == record
