"""Claims in memory: who is running which config, until when. Soft state that simply expires."""

from protocol.announce import Claim

MAX_CLAIMS = 4096


class ClaimBook:
    def __init__(self) -> None:
        self._claims: dict[tuple[str, str, str], Claim] = {}  # (author, track, config) -> newest claim

    def add(self, claim: Claim, now_ms: int) -> None:
        key = (claim.author, claim.track_key, claim.config)
        held = self._claims.get(key)
        if held is None or claim.ts_ms > held.ts_ms:
            self._claims[key] = claim
        if len(self._claims) > MAX_CLAIMS:
            self.expire(now_ms)

    def expire(self, now_ms: int) -> None:
        live = sorted(
            ((key, claim) for key, claim in self._claims.items() if claim.live(now_ms)),
            key=lambda item: item[1].expires_ms,
        )
        self._claims = dict(live[-MAX_CLAIMS:])  # a flood of live claims: keep those expiring last

    def live(self, now_ms: int) -> list[Claim]:
        self.expire(now_ms)
        return sorted(self._claims.values(), key=lambda claim: (claim.expires_ms, claim.author))

    def mine(self, author: str, now_ms: int) -> list[Claim]:
        return [claim for claim in self.live(now_ms) if claim.author == author]
