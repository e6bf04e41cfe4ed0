"""Peer scores: a peer that keeps sending invalid data is disconnected and ignored for a while.

Each invalid message, record or sync session costs its sender one point; points drain at a
steady rate, so an honest peer with a rare bad message never gets near the threshold, while a
peer that floods garbage crosses it within seconds. Refused-but-valid records (a member we have
not heard of yet, a quota) cost nothing: honest peers send those while rosters converge.
"""

import time
from collections.abc import Callable

from node.net.ratelimit import RateLimiter

PENALTY_BURST = 20.0  # invalid items a peer may send in a burst
FORGIVEN_PER_S = 0.2  # and one every five seconds, sustained
BAN_S = 600.0


class PeerScore:
    def __init__(
        self,
        burst: float = PENALTY_BURST,
        forgiven_per_s: float = FORGIVEN_PER_S,
        ban_s: float = BAN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowance = RateLimiter(forgiven_per_s, burst, clock=clock)
        self.ban_s = ban_s
        self._clock = clock
        self._banned: dict[str, float] = {}  # peer -> when its ban ends

    def penalise(self, peer: str) -> bool:
        """Count one invalid item from ``peer``; True exactly when this starts a ban."""
        if self.banned(peer) or self._allowance.allow(peer):
            return False
        self._banned[peer] = self._clock() + self.ban_s
        return True

    def banned(self, peer: str) -> bool:
        until = self._banned.get(peer)
        if until is None:
            return False
        if until <= self._clock():
            del self._banned[peer]
            return False
        return True
