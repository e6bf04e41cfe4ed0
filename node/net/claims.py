"""Claims in memory: who is running which config, until when. Soft state that simply expires."""

from protocol.announce import MAX_AGE_MS, MAX_CLAIM_TTL_MS, Claim

MAX_CLAIMS = 4096


class ClaimBook:
    """The newest claim per (author, track, config); a newer claim, even a momentary one, replaces it."""

    def __init__(self) -> None:
        self._claims: dict[tuple[str, str, str], Claim] = {}

    def add(self, claim: Claim, now_ms: int) -> None:
        key = (claim.author, claim.track_key, claim.config)
        held = self._claims.get(key)
        if held is None or claim.ts_ms > held.ts_ms:
            self._claims[key] = claim
        if len(self._claims) > MAX_CLAIMS:
            self._forget(now_ms)

    def _forget(self, now_ms: int) -> None:
        # An expired or withdrawn claim stays as a tombstone while a delayed older copy could still
        # be live, so that copy cannot revive it; past that horizon it goes. Under a flood of claims,
        # the newest are kept.
        horizon = now_ms - MAX_CLAIM_TTL_MS - MAX_AGE_MS
        kept = sorted((c for c in self._claims.values() if c.ts_ms > horizon), key=lambda c: c.ts_ms)[-MAX_CLAIMS:]
        self._claims = {(c.author, c.track_key, c.config): c for c in kept}

    def live(self, now_ms: int) -> list[Claim]:
        live = (claim for claim in self._claims.values() if claim.live(now_ms))
        return sorted(live, key=lambda claim: (claim.expires_ms, claim.author))

    def mine(self, author: str, now_ms: int) -> list[Claim]:
        return [claim for claim in self.live(now_ms) if claim.author == author]
