"""Members within their share: who counts (the roster) and how much each member may add.

Both limits are properties of the record set, counted over the records' own timestamps, never
over when or how they arrived: a member may add at most ``records_per_window`` records to any
minute of its timestamps and ``bytes_per_day`` bytes to any day of them. So gossip, sync and the
CLI meet the same limits, and every node that holds a member's records decides alike:

- a fresh node catching up on 100,000 honest records by sync at thousands a second is never
  throttled, because each author's history was within its limits when it was made;
- a member fabricating records at 870 a second is cut at the window's share on every path, and
  backdating spreads its records over days that each carry the same byte quota.

An arrival-time rate (a token bucket per author or per connection) would do neither: sync would
either throttle a catch-up or bring the flood in later anyway. Which of an over-limit member's
records fill its share may differ between nodes; that member is misbehaving, and its revocation
hides all of them everywhere.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocol.records import Record
from protocol.roster import NotAdmitted, Roster

DAY_MS = 86_400_000
WINDOW_MS = 60_000
# An honest node with 8 GPUs signs ~5 MB a day, so the byte quota only stops a member filling
# every disk in the swarm. 3,000 records a minute (50 a second) is far above a node restarting
# with every worker's run killed at once, and what gossip allowed an author before this applied
# to every path.
MEMBER_BYTES_PER_DAY = 32 * 2**20
MEMBER_RECORDS_PER_WINDOW = 3_000

NON_MEMBER, OVER_QUOTA, OVER_RATE = "non-member", "over quota", "over rate"

UsageRows = Iterable[tuple[str, int, int, int]]  # (author, ts_ms // WINDOW_MS, records, bytes)


@dataclass(frozen=True)
class Limits:
    """What one member may add: records per minute and bytes per day of its records' timestamps."""

    records_per_window: int = MEMBER_RECORDS_PER_WINDOW
    bytes_per_day: int = MEMBER_BYTES_PER_DAY


LIMITS = Limits()  # every member's, unless a test or bench says otherwise


class Refused(NotAdmitted):
    """A valid record that does not count here; ``kind`` is NON_MEMBER, OVER_QUOTA or OVER_RATE."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class Usage:
    """Records per (author, minute) and bytes per (author, day) of the admitted set, read on first need.

    Counted when a record is admitted, so the rest of a batch meets the same limits; ``forget``
    drops the counts (a rolled-back batch) and the next check reads them again from the set.
    """

    def __init__(self, read_rows: Callable[[], UsageRows]) -> None:
        self._read_rows = read_rows
        self._records: dict[tuple[str, int], int] | None = None
        self._bytes: dict[tuple[str, int], int] = {}

    def forget(self) -> None:
        self._records = None

    def charge(self, record: Record, limits: Limits) -> None:
        """Count ``record`` against its author's share; Refused (and nothing counted) if it is over."""
        records, day_bytes = self._counts()
        window, day = (record.author, record.ts_ms // WINDOW_MS), (record.author, record.ts_ms // DAY_MS)
        if records.get(window, 0) >= limits.records_per_window:
            raise Refused(
                OVER_RATE, f"author {record.author} is over its rate of {limits.records_per_window} records a minute"
            )
        if day_bytes.get(day, 0) + len(record.raw) > limits.bytes_per_day:
            raise Refused(
                OVER_QUOTA, f"author {record.author} is over its quota of {limits.bytes_per_day / 2**20:g} MiB a day"
            )
        records[window] = records.get(window, 0) + 1
        day_bytes[day] = day_bytes.get(day, 0) + len(record.raw)

    def _counts(self) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        if self._records is None:
            records: dict[tuple[str, int], int] = {}
            day_bytes: dict[tuple[str, int], int] = defaultdict(int)
            for author, window, count, size in self._read_rows():
                records[(author, window)] = count
                day_bytes[(author, window * WINDOW_MS // DAY_MS)] += size
            self._records, self._bytes = records, dict(day_bytes)
        return self._records, self._bytes


def check_member(roster: Roster, record: Record) -> None:
    """Refused (NON_MEMBER) unless ``record``'s author counts now: a member, an admin for roster records."""
    try:
        roster.check(record)
    except NotAdmitted as err:
        raise Refused(NON_MEMBER, str(err)) from None
