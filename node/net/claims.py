"""Claims in memory: who is running which config, until when. Soft state that simply expires."""

import heapq

from protocol.announce import Claim

MAX_CLAIMS = 4096
# A node with 8 GPUs holds 8 claims and as many withdrawn ones (tombstones) for the minutes a late copy
# could still arrive; a member holding more is flooding, and loses its oldest.
MAX_CLAIMS_PER_AUTHOR = 64

Key = tuple[str, str, str]  # (author, track key, config)


class ClaimBook:
    """The newest claim per (author, track, config); a newer claim, even a momentary one, replaces it.

    An expired or withdrawn claim stays as a tombstone, so a delayed older copy cannot revive it,
    until room is needed: then the oldest go first, the author's own past its share, else anyone's.
    Adding costs O(log n) (a heap of timestamps with lazy deletion), whatever the flood.
    """

    def __init__(self) -> None:
        self._claims: dict[Key, Claim] = {}
        self._by_author: dict[str, set[Key]] = {}
        self._oldest: list[tuple[int, Key]] = []  # (ts_ms, key); entries whose claim was replaced are skipped

    def __len__(self) -> int:
        return len(self._claims)

    def add(self, claim: Claim, now_ms: int) -> None:
        key = (claim.author, claim.track_key, claim.config)
        held = self._claims.get(key)
        if held is not None and claim.ts_ms <= held.ts_ms:
            return
        self._claims[key] = claim
        keys = self._by_author.setdefault(claim.author, set())
        keys.add(key)
        heapq.heappush(self._oldest, (claim.ts_ms, key))
        if len(keys) > MAX_CLAIMS_PER_AUTHOR:
            self._drop(min(keys, key=lambda k: (self._claims[k].ts_ms, k)))
        while len(self._claims) > MAX_CLAIMS:
            ts_ms, oldest = heapq.heappop(self._oldest)
            if self._current(ts_ms, oldest):
                self._drop(oldest)
        if len(self._oldest) > 2 * len(self._claims) + MAX_CLAIMS_PER_AUTHOR:  # amortised: stale entries go
            self._oldest = [entry for entry in self._oldest if self._current(*entry)]
            heapq.heapify(self._oldest)

    def _current(self, ts_ms: int, key: Key) -> bool:
        claim = self._claims.get(key)
        return claim is not None and claim.ts_ms == ts_ms

    def _drop(self, key: Key) -> None:
        del self._claims[key]
        keys = self._by_author[key[0]]
        keys.discard(key)
        if not keys:
            del self._by_author[key[0]]

    def forget_author(self, author: str) -> None:
        """Drop every claim of ``author`` (no longer a member)."""
        for key in list(self._by_author.get(author, ())):
            self._drop(key)

    def live(self, now_ms: int) -> list[Claim]:
        live = (claim for claim in self._claims.values() if claim.live(now_ms))
        return sorted(live, key=lambda claim: (claim.expires_ms, claim.author))

    def mine(self, author: str, now_ms: int) -> list[Claim]:
        keys = self._by_author.get(author, ())
        return sorted((c for k in keys if (c := self._claims[k]).live(now_ms)), key=lambda c: (c.expires_ms, c.author))
