"""The roster: who belongs to a swarm, as a pure function of its founders and its roster records.

The founders are the admins named in the swarm file's policy. Every other member is admitted
by a ``membership`` record and removed by a ``revocation`` record, each signed by an admin;
both are ordinary records in the grow-only ledger, so the roster is the same on every node
that holds the same records, whatever order they arrived in. Timestamps play no part.

- Ranks. Founders have rank 0; an admin granted by admins of rank at most r has rank r + 1
  (its lowest). A revocation removes an admin only when its signer outranks it (a lower rank),
  so two admins can never remove each other, and founders are removed only by making a new
  swarm file. Any admin removes a plain member.
- Removal is total and final for that key: a removed key's records all stop counting, the
  grants and revocations it signed included (a leaked admin key takes its Sybils with it), and
  no later grant brings the key back; its owner makes a new identity and asks for a new invite.
- A policy without admins (a swarm file from before rosters) is an open swarm: every holder of
  the swarm key counts as a member, as before, and roster records are refused.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.errors import RecordError
from protocol.records import ROSTER_KINDS, Record


class NotAdmitted(RecordError):
    """A valid record that the swarm does not take (yet): its author is not a member or is over a limit."""


@dataclass(frozen=True)
class Roster:
    open: bool
    admins: frozenset[str]
    members: frozenset[str]  # the admins included
    revoked: frozenset[str]

    def is_member(self, peer_id: str) -> bool:
        return self.open or peer_id in self.members

    def counts(self, author: str, kind: str) -> bool:
        """Whether a record of ``kind`` by ``author`` counts: roster records need an admin, others a member."""
        return author in self.admins if kind in ROSTER_KINDS else self.is_member(author)

    def check(self, record: Record) -> None:
        """NotAdmitted with a one-line reason unless ``record`` counts."""
        if self.counts(record.author, record.kind):
            return
        if record.kind in ROSTER_KINDS:
            raise NotAdmitted(f"{record.kind} signed by {record.author}, who is not an admin of this swarm")
        state = "was revoked" if record.author in self.revoked else "is not a member"
        raise NotAdmitted(f"author {record.author} {state}")


def build_roster(founders: Iterable[str], records: Iterable[Record]) -> Roster:
    """The roster that ``founders`` and the membership and revocation ``records`` define (others are ignored)."""
    founders = frozenset(founders)
    if not founders:
        return Roster(open=True, admins=frozenset(), members=frozenset(), revoked=frozenset())
    granted: dict[str, set[str]] = defaultdict(set)  # member -> signers of its grants
    granted_admin: dict[str, set[str]] = defaultdict(set)
    revokers: dict[str, set[str]] = defaultdict(set)  # member -> signers of its revocations
    for record in records:
        if record.kind == "membership":
            granted[record.body["member"]].add(record.author)
            if record.body["admin"]:
                granted_admin[record.body["member"]].add(record.author)
        elif record.kind == "revocation":
            revokers[record.body["member"]].add(record.author)
    admins = set(founders)
    newest = set(founders)  # the admins of the last rank found
    while newest:  # rank by rank: every admin that outranks the next rank is already known
        newest = {
            member
            for member, signers in granted_admin.items()
            if member not in admins and signers & newest and not revokers[member] & admins
        }
        admins |= newest
    members, revoked = set(admins), set()
    for member, signers in granted.items():
        if member in admins or not signers & admins:
            continue
        (revoked if revokers[member] & admins else members).add(member)
    revoked |= {member for member, signers in revokers.items() if signers & admins and member not in admins}
    return Roster(open=False, admins=frozenset(admins), members=frozenset(members), revoked=frozenset(revoked))
