"""The gate: the one way into the ledger for every record, ours or a peer's, by gossip, sync or the CLI.

Each record is, once:

1. judged: its size, decoding, signature and the swarm's policy (intake.py); a large batch on the
   intake's worker processes, so no caller's thread verifies a catch-up by itself;
2. decided: whether it counts here, its author a member (an admin for roster records) within its
   share of records and bytes (members.py);
3. stored: ``Ledger.store``, which trusts the gate.

Every refusal is counted by kind and logged in one line, at most once a minute per kind with how
many more came since: a flood costs a line, not a line per record.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.store.intake import IMPLAUSIBLE, Intake, Judging, RejectedRecord, Rejection, record_id_of
from node.store.members import LIMITS, OVER_QUOTA, OVER_RATE, Limits, Refused, check_member
from protocol.errors import RecordError
from protocol.records import ROSTER_KINDS, Record

if TYPE_CHECKING:  # the ledger imports the gate for its shorthands; the gate needs it only for types
    from node.store.ledger import Ledger

log = logging.getLogger("arnode.gate")

LOG_EVERY_S = 60.0  # one line per kind of refusal at most this often
LOUD_KINDS = frozenset({OVER_QUOTA, OVER_RATE})  # a member misbehaving: an admin may want to revoke it


@dataclass(frozen=True)
class AddReport:
    added: list[Record]
    duplicates: int
    rejected: list[str]  # one reason per invalid record
    refused: dict[bytes, str]  # record ID -> why a valid record was not taken (not a member, over a limit)


class RefusalLog:
    """One log line per kind of refusal per LOG_EVERY_S, saying how many more of that kind came since."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logged_at: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()  # refusals per kind since its last line

    def note(self, kind: str, reason: str, source: str) -> None:
        now = self.clock()
        if now - self._logged_at.get(kind, -LOG_EVERY_S) < LOG_EVERY_S:
            self._quiet[kind] += 1
            return
        since = self._quiet.pop(kind, 0)
        self._logged_at[kind] = now
        more = f" ({since} more {kind} records since the last line)" if since else ""
        level = logging.WARNING if kind in LOUD_KINDS else logging.INFO
        log.log(level, "%s: refused a record, %s: %s%s", source, kind, reason[:200], more)


class Gate:
    """Judges, decides and stores records for one ledger; a context manager that owns the intake's workers.

    ``workers``: processes that verify large batches (default: one per core; 1 verifies inline).
    """

    def __init__(self, ledger: "Ledger", workers: int | None = None, limits: Limits = LIMITS) -> None:
        self.ledger = ledger
        self.intake = Intake(ledger.policy, workers)
        self.limits = limits
        self.refusals: Counter[str] = Counter()  # by kind, since the gate opened: for status and tests
        self._log = RefusalLog()
        self._pending: set[bytes] = set()  # IDs admitted one at a time (gossip) and not stored yet

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.intake.close()

    # --- one record at a time ---

    def admit(self, raw: bytes, now_ms: int, source: str) -> Record | None:
        """The record in ``raw``, judged and decided (charged to its author's share), for ``store_admitted``;
        None if we hold it or admitted it already. RejectedRecord or Refused (a NotAdmitted) otherwise.

        Gossip's validator calls this: each check once, before the record is forwarded.
        """
        wanted = record_id_of(raw)
        if wanted in self._pending or self.ledger.has(wanted):
            return None
        record = self._judged(raw, now_ms, source)
        self._decide(record, source)
        self._pending.add(record.id)
        return record

    def store_admitted(self, records: list[Record]) -> list[Record]:
        """Store what ``admit`` let in, in one transaction; the new ones (sync may have brought some since)."""
        try:
            with self.ledger.transaction():
                return self.ledger.store(self.ledger.new_records(records))
        finally:
            self._pending.difference_update(record.id for record in records)

    def add(self, raw: bytes, now_ms: int | None = None, source: str = "this node") -> Record | None:
        """Judge, decide and store one record's bytes: the Record if new, None if already held;
        RejectedRecord if invalid, Refused (a NotAdmitted) if valid but it does not count here."""
        if self.ledger.has(record_id_of(raw)):
            return None
        return self.add_record(self._judged(raw, _now(now_ms), source), source)

    def add_record(self, record: Record, source: str = "this node") -> Record | None:
        """A Record already verified (ours from ``sign``, or decoded): checked against the policy, decided and
        stored; the Record if new, None if already held; RejectedRecord or Refused as ``add``."""
        try:
            self.ledger.policy.check(record)
        except RecordError as err:
            self._note(IMPLAUSIBLE, str(err), source)
            raise RejectedRecord(Rejection(IMPLAUSIBLE, str(err))) from None
        added, refused = self.store([record], source)
        if refused:
            raise refused[record.id]
        return added[0] if added else None

    # --- batches ---

    def add_many(self, raws: Iterable[bytes], now_ms: int | None = None, source: str = "this node") -> AddReport:
        """Judge, decide and store a batch of bytes in one transaction; what was not taken is reported, not raised."""
        raws = list(raws)
        records, rejected = self.intake.admit_many(self.ledger.unheld(raws), _now(now_ms))
        self.note_rejected(rejected, source)
        added, refused = self.store(records, source)
        return AddReport(
            added,
            len(raws) - len(added) - len(rejected) - len(refused),
            [rejection.reason for rejection in rejected],
            {record_id: str(err) for record_id, err in refused.items()},
        )

    def start(self, raws: list[bytes], now_ms: int) -> Judging:
        """Begin judging those of ``raws`` we do not hold, on the workers if the batch is large; its
        ``result()`` (call it off the event loop) gives the verdicts for ``note_rejected`` and ``store``."""
        return self.intake.start(self.ledger.unheld(raws), now_ms)

    def note_rejected(self, rejected: Iterable[Rejection], source: str) -> None:
        for rejection in rejected:
            self._note(rejection.kind, rejection.reason, source)

    def store(self, records: list[Record], source: str) -> tuple[list[Record], dict[bytes, Refused]]:
        """Decide and store judged records in one transaction: the new ones that count, and by ID why each
        other new one does not. Roster records go first, again and again while they make progress: a
        batch may hold an admin's own grant after the invites that admin signed."""
        added: list[Record] = []
        refused: dict[bytes, Refused] = {}
        with self.ledger.transaction():
            fresh = self.ledger.new_records(records)
            waiting = sorted((r for r in fresh if r.kind in ROSTER_KINDS), key=lambda r: (r.ts_ms, r.id))
            while ready := [r for r in waiting if self.ledger.roster.counts(r.author, r.kind)]:
                added += self.ledger.store(self._counted(ready, refused, source))
                taken = {r.id for r in ready}
                waiting = [r for r in waiting if r.id not in taken]
            others = [r for r in fresh if r.kind not in ROSTER_KINDS]
            added += self.ledger.store(self._counted(waiting + others, refused, source))
        return added, refused

    # --- the decisions ---

    def _judged(self, raw: bytes, now_ms: int, source: str) -> Record:
        try:
            return self.intake.admit(raw, now_ms)
        except RejectedRecord as err:
            self._note(err.rejection.kind, err.rejection.reason, source)
            raise

    def _counted(self, records: list[Record], refused: dict[bytes, Refused], source: str) -> list[Record]:
        """Those of ``records`` that count, each charged to its author's share; the others into ``refused``."""
        counted = []
        for record in records:
            try:
                self._decide(record, source)
            except Refused as err:
                refused[record.id] = err
            else:
                counted.append(record)
        return counted

    def _decide(self, record: Record, source: str) -> None:
        """Refused unless ``record``'s author counts now and has room in its share, which it then uses."""
        try:
            check_member(self.ledger.roster, record)
            self.ledger.usage.charge(record, self.limits)
        except Refused as err:
            self._note(err.kind, str(err), source)
            raise

    def _note(self, kind: str, reason: str, source: str) -> None:
        self.refusals[kind] += 1
        self._log.note(kind, reason, source)


def _now(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms
