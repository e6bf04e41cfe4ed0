"""Fingerprints of record-ID ranges, the arithmetic of range-based set reconciliation.

Records are ordered by ``(ts_ms, id)``. A *bound* ``(ts_ms, id_prefix)`` splits that order: an
item lies below a bound when its key compares lower as a tuple (a prefix sorts before every ID
that extends it). A range ``[lower, upper)`` is fingerprinted by the sum of its IDs, read as
256-bit integers, modulo 2**256, hashed with the item count: two nodes that hold the same IDs
in a range compute the same 16 bytes, and a prefix-sum table answers any range in O(1).
"""

import hashlib
from bisect import bisect_left
from collections.abc import Sequence

Key = tuple[int, bytes]  # (ts_ms, record id)
Bound = tuple[int, bytes]  # (ts_ms, id prefix)

ID_BYTES = 32
FINGERPRINT_BYTES = 16
MAX_TS = 2**64 - 1
LOWEST: Bound = (0, b"")
HIGHEST: Bound = (MAX_TS, b"")  # above every record: timestamps are far below 2**64
_MODULUS = 1 << (8 * ID_BYTES)
_TAG = b"arnode/fingerprint/1\n"


def fingerprint(id_sum: int, count: int) -> bytes:
    """The fingerprint of a range whose IDs add up to ``id_sum`` (mod 2**256) over ``count`` items."""
    packed = (id_sum % _MODULUS).to_bytes(ID_BYTES, "little") + count.to_bytes(8, "little")
    return hashlib.sha256(_TAG + packed).digest()[:FINGERPRINT_BYTES]


def separator(below: Key, above: Key) -> Bound:
    """The shortest bound with ``below < bound <= above``; ``below`` must sort before ``above``."""
    if below[0] != above[0]:
        return above[0], b""
    shared = 0
    while below[1][shared] == above[1][shared]:
        shared += 1
    return above[0], above[1][: shared + 1]


class RangeIndex:
    """An immutable snapshot of sorted, unique keys, answering counts and fingerprints of ranges."""

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = keys
        self._prefix = [0]
        total = 0
        for _, record_id in keys:
            total += int.from_bytes(record_id, "little")
            self._prefix.append(total)

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, bound: Bound) -> int:
        """How many keys lie below ``bound``."""
        return bisect_left(self.keys, bound)

    def fingerprint(self, start: int, stop: int) -> bytes:
        """The fingerprint of ``keys[start:stop]``."""
        return fingerprint(self._prefix[stop] - self._prefix[start], stop - start)

    def ids(self, start: int, stop: int) -> list[bytes]:
        return [record_id for _, record_id in self.keys[start:stop]]

    def split(
        self, lower: Bound, upper: Bound, start: int, stop: int, parts: int
    ) -> list[tuple[Bound, Bound, int, int]]:
        """Cut ``[lower, upper)``, holding ``keys[start:stop]`` (at least ``parts`` of them), into ``parts``
        ranges of near-equal counts: (lower, upper, start, stop) each."""
        count = stop - start
        cuts = [start + count * part // parts for part in range(1, parts)]
        bounds = [lower] + [separator(self.keys[cut - 1], self.keys[cut]) for cut in cuts] + [upper]
        edges = [start, *cuts, stop]
        return [(bounds[i], bounds[i + 1], edges[i], edges[i + 1]) for i in range(parts)]
